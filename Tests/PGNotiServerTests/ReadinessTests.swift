import Foundation
import PGNotiConfig
import PGNotiSpool
import Testing

@testable import PGNotiServer

/// Each readiness check on its own, with its inputs given.
@Suite struct ReadinessTests {
    struct DiskDown: Error, CustomStringConvertible {
        var description: String { "disk I/O error" }
    }

    static func readiness(
        in dir: URL, probe: @escaping @Sendable () async throws -> Void = {},
        lastFailure: String? = nil, filingError: String? = nil, freeBytes: Int? = 1 << 40
    ) throws -> Readiness {
        var config = Config()
        config.database = dir.appendingPathComponent("db/pgnoti.sqlite").path
        config.queue = dir.appendingPathComponent("queue").path
        config.minFreeBytes = 1_000_000
        return Readiness(
            config: config, probeDatabase: probe, lastDatabaseFailure: { lastFailure },
            queue: try QueueDirectory(root: URL(fileURLWithPath: config.queue)), filingError: { filingError },
            databaseTimeout: .milliseconds(200), freeBytes: { _ in freeBytes })
    }

    static func directory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pgnoti-ready-\(UUID())")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func allGoodIsReady() async throws {
        let checks = try await Self.readiness(in: Self.directory()).run()
        #expect(checks.map(\.name) == ["database", "queue", "disk"])
        #expect(checks.filter { !$0.ok }.isEmpty, "\(checks)")
    }

    @Test func aDatabaseThatCannotCommitIsNotReady() async throws {
        let check = try await Self.readiness(in: Self.directory(), probe: { throw DiskDown() }).database()
        #expect(!check.ok && check.detail == "disk I/O error")
    }

    @Test func aDatabaseWhoseLastCommitFailedIsNotReadyEvenIfAProbeCommits() async throws {
        let check = try await Self.readiness(in: Self.directory(), lastFailure: "SQLITE_FULL").database()
        #expect(!check.ok && check.detail == "last commit failed: SQLITE_FULL")
    }

    @Test func aProbeThatHangsIsAFailedCheckNotAHungReadyz() async throws {
        let readiness = try Self.readiness(in: Self.directory(), probe: { try await Task.sleep(for: .seconds(30)) })
        let started = ContinuousClock.now
        let check = await readiness.database()
        #expect(!check.ok && check.detail.contains("no answer within"))
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test func aQueueWhoseFilingFailsIsNotReady() throws {
        let check = try Self.readiness(in: Self.directory(), filingError: "rename: Read-only file system").queueCheck()
        #expect(!check.ok && check.detail == "filing fails: rename: Read-only file system")
    }

    @Test func anUnwritableQueueIsNotReady() throws {
        let dir = try Self.directory()
        let readiness = try Self.readiness(in: dir)
        try FileManager.default.removeItem(atPath: readiness.config.queue)
        // A file where the queue directory should be: nothing can be written under it.
        FileManager.default.createFile(atPath: readiness.config.queue, contents: Data())
        #expect(!readiness.queueCheck().ok)
    }

    @Test func belowMinFreeBytesIsNotReadyAndSaysWhere() throws {
        let readiness = try Self.readiness(in: Self.directory(), freeBytes: 10)
        let check = readiness.disk()
        #expect(!check.ok)
        #expect(check.detail.contains("\(readiness.config.queue): 10 bytes free, below min_free_bytes 1000000"))
    }

    @Test func aPathThatCannotBeStattedIsNotReady() throws {
        let check = try Self.readiness(in: Self.directory(), freeBytes: nil).disk()
        #expect(!check.ok && check.detail.contains("cannot stat"))
    }
}

/// What a SIGHUP changes at once, and what waits for a restart.
@Suite struct ReloadPlanTests {
    @Test func keysAndLimitsApplyAtOnce() {
        let old = Config()
        var new = old
        new.smartro.enabled = true
        new.limits.maxConnections = old.limits.maxConnections + 7
        let plan = ReloadPlan(old: old, new: new)
        #expect(plan.restartKeys.isEmpty)
        #expect(plan.live.smartro.enabled)
        #expect(plan.live.limits.maxConnections == old.limits.maxConnections + 7)
    }

    @Test func addressesPathsAndTheGuardsLimitsWaitForARestartAndKeepTheirOldValues() throws {
        let old = Config()
        var new = old
        new.listen = try #require(ListenAddress(parsing: "127.0.0.1:9999"))
        new.database = "/elsewhere/pgnoti.sqlite"
        new.queue = "/elsewhere/queue"
        new.maxBodyBytes = old.maxBodyBytes * 2
        new.logLevel = .debug
        let plan = ReloadPlan(old: old, new: new)
        #expect(plan.restartKeys == ["listen", "database", "queue", "log_level", "max_body_bytes"])
        #expect(plan.live.listen == old.listen)
        #expect(plan.live.database == old.database && plan.live.queue == old.queue)
        // The front refuses by the limit the connection guard was built with.
        #expect(plan.live.maxBodyBytes == old.maxBodyBytes)
    }
}
