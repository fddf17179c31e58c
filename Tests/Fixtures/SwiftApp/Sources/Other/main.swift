import Foundation

// A second product with a resource of its own: its bundle must not follow SwiftApp.
let url = Bundle.module.url(forResource: "other", withExtension: "txt")!
print(try! String(contentsOf: url, encoding: .utf8), terminator: "")
