// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Kiln",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "kiln", targets: ["kiln"]),
        .library(name: "KilnOCI", targets: ["KilnOCI"]),
        .library(name: "KilnArchive", targets: ["KilnArchive"]),
        .library(name: "KilnImage", targets: ["KilnImage"]),
        .library(name: "KilnBuild", targets: ["KilnBuild"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // System libraries, installed by scripts/setup (zlib1g-dev, libzstd-dev, libdeflate-dev).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd"),
        .systemLibrary(name: "CLibdeflate", path: "Sources/CLibdeflate"),

        .target(name: "CKilnSys"),

        .target(name: "KilnOCI", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "KilnArchive", dependencies: ["KilnOCI", "CZlib", "CZstd", "CLibdeflate", "CKilnSys"]),
        .target(name: "KilnImage", dependencies: ["KilnOCI", "KilnArchive"]),
        .target(name: "KilnBuild", dependencies: ["KilnOCI", "KilnArchive", "KilnImage", "CKilnSys", "Yams"]),
        .executableTarget(name: "kiln", dependencies: [
            "KilnOCI", "KilnArchive", "KilnImage", "KilnBuild",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "KilnOCITests", dependencies: ["KilnOCI"]),
        .testTarget(name: "KilnArchiveTests", dependencies: ["KilnArchive"]),
        .testTarget(name: "KilnImageTests", dependencies: ["KilnImage", "KilnBuild"]),
        .testTarget(name: "KilnBuildTests", dependencies: ["KilnBuild"]),
        .testTarget(name: "IntegrationTests", dependencies: ["KilnOCI"]),
    ],
    swiftLanguageModes: [.v6]
)
