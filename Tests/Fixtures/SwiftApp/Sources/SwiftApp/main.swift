import Foundation

// Bundle.module finds SwiftApp_SwiftApp.resources next to the executable (or in .build).
guard let url = Bundle.module.url(forResource: "greeting", withExtension: "txt"),
      let text = try? String(contentsOf: url, encoding: .utf8) else {
    FileHandle.standardError.write(Data("SwiftApp: no greeting.txt in \(Bundle.module.bundlePath)\n".utf8))
    exit(1)
}
print(text, terminator: "")
for argument in CommandLine.arguments.dropFirst() { print(argument) }
