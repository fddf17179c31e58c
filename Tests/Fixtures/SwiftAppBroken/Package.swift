// swift-tools-version:6.0
// An executable that does not compile: Kiln's `swift:` item must fail with its last lines.
import PackageDescription

let package = Package(
    name: "SwiftAppBroken",
    products: [.executable(name: "SwiftAppBroken", targets: ["SwiftAppBroken"])],
    targets: [.executableTarget(name: "SwiftAppBroken")]
)
