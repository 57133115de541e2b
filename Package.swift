// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "pgnoti",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pgnoti", targets: ["pgnoti"])
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // System libcrypto: MD5/SHA-256 digests and CRYPTO_memcmp for constant-time compares.
        .systemLibrary(name: "CPGNotiOpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // Linux calls Swift's Glibc module leaves out (syncfs).
        .target(name: "CPGNotiSys"),
        // Pure logic: bytes in, values out. No files, sockets or clocks.
        .target(name: "PGNotiCore", dependencies: ["CPGNotiOpenSSL"]),
        // pgnoti.toml → Config.
        .target(
            name: "PGNotiConfig",
            dependencies: [
                "PGNotiCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ]),
        // The queue directory and the relay that files the outbox into it.
        .target(
            name: "PGNotiSpool",
            dependencies: [
                "PGNotiCore", "CPGNotiSys",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),
        // The SQLite ledger: notifications, outbox, conflicts, quarantine.
        .target(
            name: "PGNotiStore",
            dependencies: [
                "PGNotiCore", "PGNotiSpool",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),
        // The ledger on PostgreSQL, for more than one host: the same roles and rules as SQLite.
        .target(
            name: "PGNotiPostgres",
            dependencies: [
                "PGNotiCore", "PGNotiConfig", "PGNotiStore", "PGNotiSpool", "PGNotiForward",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The one path into the ledger: decode → authenticate → verify → commit. No HTTP.
        .target(
            name: "PGNotiIntake",
            dependencies: [
                "PGNotiCore", "PGNotiConfig", "PGNotiStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]),
        // The queue's consumer: claims events from new/ and delivers them (webhook or command).
        .target(
            name: "PGNotiForward",
            dependencies: [
                "PGNotiCore", "PGNotiSpool",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // JSON log lines and the sink that writes them without blocking requests.
        .target(
            name: "PGNotiLogging",
            dependencies: [
                "PGNotiCore",
                .product(name: "Logging", package: "swift-log"),
            ]),
        // A plain TCP client that sends exact request bytes (`pgnoti send`, tests).
        .target(name: "PGNotiRawHTTP"),
        // The transports: public listener, signals, systemd.
        .target(
            name: "PGNotiServer",
            dependencies: [
                "PGNotiCore", "PGNotiConfig", "PGNotiStore", "PGNotiSpool", "PGNotiIntake", "PGNotiLogging",
                "PGNotiForward", "PGNotiPostgres",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .executableTarget(
            name: "pgnoti",
            dependencies: [
                "PGNotiServer", "PGNotiConfig", "PGNotiIntake", "PGNotiStore", "PGNotiSpool", "PGNotiLogging",
                "PGNotiRawHTTP", "PGNotiForward", "PGNotiPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // Benchmark helpers (ACK-only server, fixed-rate load, outbox seeding). Not shipped.
        .executableTarget(
            name: "pgnoti-bench",
            dependencies: [
                "PGNotiServer", "PGNotiConfig", "PGNotiIntake", "PGNotiStore", "PGNotiCore", "PGNotiRawHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // What the test targets share: deadline-bound waits, log capture, the daemon harness.
        .target(
            name: "PGNotiTestSupport",
            dependencies: [
                "PGNotiCore", "PGNotiConfig", "PGNotiRawHTTP",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/PGNotiTestSupport"),
        .testTarget(name: "PGNotiCoreTests", dependencies: ["PGNotiCore"]),
        .testTarget(name: "PGNotiConfigTests", dependencies: ["PGNotiConfig", "PGNotiCore"]),
        .testTarget(
            name: "PGNotiForwardTests",
            dependencies: ["PGNotiForward", "PGNotiCore", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "PGNotiSpoolTests",
            dependencies: [
                "PGNotiSpool", "PGNotiCore", "PGNotiTestSupport", .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "PGNotiStoreTests",
            dependencies: [
                "PGNotiCore", "PGNotiStore", "PGNotiSpool", "PGNotiPostgres", "PGNotiConfig", "PGNotiForward",
                "PGNotiTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "PGNotiIntakeTests",
            dependencies: [
                "PGNotiIntake", "PGNotiStore", "PGNotiConfig", "PGNotiCore", "PGNotiLogging", "PGNotiTestSupport",
            ]),
        .testTarget(
            name: "PGNotiServerTests",
            dependencies: [
                "PGNotiServer", "PGNotiIntake", "PGNotiStore", "PGNotiConfig", "PGNotiCore", "PGNotiLogging",
                "PGNotiTestSupport", .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]),
        // Starts the built `pgnoti` binary; depending on it makes `swift test` build it first.
        .testTarget(
            name: "PGNotiEndToEndTests",
            dependencies: [
                "PGNotiCore", "PGNotiConfig", "PGNotiStore", "PGNotiRawHTTP", "PGNotiTestSupport", "pgnoti",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]),
    ]
)
