// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "pgnoti",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "pgnoti", targets: ["pgnoti"])
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // System libcrypto: MD5/SHA-256 digests and CRYPTO_memcmp for constant-time compares.
        .systemLibrary(name: "CPGNotiOpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // Pure logic: bytes in, values out. No files, sockets or clocks.
        .target(name: "PGNotiCore", dependencies: ["CPGNotiOpenSSL"]),
        .target(
            name: "PGNotiStore",
            dependencies: [
                "PGNotiCore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]),
        .target(
            name: "PGNotiSpool",
            dependencies: [
                "PGNotiCore", "PGNotiStore",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "PGNotiServer",
            dependencies: [
                "PGNotiCore", "PGNotiStore", "PGNotiSpool",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .executableTarget(
            name: "pgnoti",
            dependencies: [
                "PGNotiServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "PGNotiCoreTests", dependencies: ["PGNotiCore"]),
        .testTarget(name: "PGNotiStoreTests", dependencies: ["PGNotiCore", "PGNotiStore", "PGNotiSpool"]),
        .testTarget(
            name: "PGNotiServerTests", dependencies: ["PGNotiServer", "PGNotiStore", "PGNotiSpool", "PGNotiCore"]),
        // Starts the built `pgnoti` binary; depending on it makes `swift test` build it first.
        .testTarget(
            name: "PGNotiEndToEndTests", dependencies: ["PGNotiCore", "PGNotiServer", "PGNotiStore", "pgnoti"]),
    ]
)
