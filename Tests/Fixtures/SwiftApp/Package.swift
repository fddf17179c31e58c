// swift-tools-version:6.0
// A tiny executable with a resource, for Kiln's `swift:` content item tests: it prints
// its resource through Bundle.module, then its arguments. No dependencies.
import PackageDescription

let package = Package(
    name: "SwiftApp",
    products: [.executable(name: "SwiftApp", targets: ["SwiftApp"])],
    targets: [.executableTarget(name: "SwiftApp", resources: [.copy("greeting.txt")])]
)
