// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Kiln",
    products: [
        .executable(name: "kiln", targets: ["kiln"]),
        // `swift package build-image` (Plugins/BuildImage): images of a package's products with Kiln.
        .plugin(name: "BuildImage", targets: ["BuildImage"]),
        .library(name: "KilnOCI", targets: ["KilnOCI"]),
        .library(name: "KilnArchive", targets: ["KilnArchive"]),
        .library(name: "KilnImage", targets: ["KilnImage"]),
        .library(name: "KilnBuild", targets: ["KilnBuild"]),
        .library(name: "KilnRegistry", targets: ["KilnRegistry"]),
        .library(name: "KilnDebian", targets: ["KilnDebian"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
    ],
    targets: [
        // System libraries, installed by scripts/setup (zlib1g-dev, libzstd-dev, libdeflate-dev).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd"),
        .systemLibrary(name: "CLibdeflate", path: "Sources/CLibdeflate"),
        .systemLibrary(name: "CLzma", path: "Sources/CLzma"),

        .target(name: "CKilnSys"),

        .target(name: "KilnOCI", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "KilnArchive", dependencies: ["KilnOCI", "CZlib", "CZstd", "CLibdeflate", "CLzma", "CKilnSys",
                                             .product(name: "Logging", package: "swift-log")]),
        .target(name: "KilnImage", dependencies: ["KilnOCI", "KilnArchive", "CKilnSys"]),
        // Debian repositories and packages: apt sources, signed Release files, Packages
        // indexes, version rules, dependency resolution, .deb archives, downloads.
        .target(name: "KilnDebian", dependencies: [
            "KilnOCI", "KilnArchive",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "KilnBuild", dependencies: ["KilnOCI", "KilnArchive", "KilnImage", "KilnDebian", "CKilnSys", "Yams",
                                           .product(name: "Crypto", package: "swift-crypto"),
                                           .product(name: "Logging", package: "swift-log")]),
        .target(name: "KilnRegistry", dependencies: [
            "KilnOCI", "KilnArchive", "KilnImage",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "kiln", dependencies: [
            "KilnOCI", "KilnArchive", "KilnImage", "KilnBuild", "KilnRegistry", "KilnDebian",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .plugin(name: "BuildImage",
                capability: .command(
                    intent: .custom(verb: "build-image", description: "Build a container image of a product with Kiln"),
                    permissions: [
                        .writeToPackageDirectory(reason: "Kiln writes the image file (-o, default NAME.tar) in the package directory"),
                        .allowNetworkConnections(scope: .all(), reason: "Kiln pushes the image to --repository and pulls the --from base"),
                    ]),
                dependencies: ["kiln"]),

        .testTarget(name: "KilnOCITests", dependencies: ["KilnOCI"]),
        .testTarget(name: "KilnArchiveTests", dependencies: ["KilnArchive"]),
        .testTarget(name: "KilnImageTests", dependencies: ["KilnImage", "KilnBuild"]),
        .testTarget(name: "KilnBuildTests", dependencies: ["KilnBuild", "KilnDebian"]),
        .testTarget(name: "KilnRegistryTests", dependencies: ["KilnRegistry"]),
        .testTarget(name: "KilnDebianTests", dependencies: ["KilnDebian", "KilnArchive"]),
        .testTarget(name: "IntegrationTests", dependencies: ["KilnOCI"]),
    ],
    swiftLanguageModes: [.v6]
)
