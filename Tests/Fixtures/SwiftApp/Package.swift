// swift-tools-version:6.0
// A tiny executable with a resource, for Kiln's `swift:` content item tests: it prints
// its resource through Bundle.module, then its arguments. `Other` is a second product
// with a resource of its own (its bundle must not go with SwiftApp). No dependencies.
import PackageDescription

let package = Package(
    name: "SwiftApp",
    products: [
        .executable(name: "SwiftApp", targets: ["SwiftApp"]),
        .executable(name: "Other", targets: ["Other"]),
    ],
    targets: [
        .executableTarget(name: "SwiftApp", resources: [.copy("greeting.txt")]),
        .executableTarget(name: "Other", resources: [.copy("other.txt")]),
    ]
)
