import Foundation
import GRDB
import PGNotiRawHTTP
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The store and the disk failing under the real binary. Permission bits mean nothing to root
/// (tests run as root), so the faults are a lock held elsewhere, a file where a directory
/// should be, and a full tmpfs.
extension EndToEnd {
    @Suite struct FaultEndToEndTests {
        static func approval(_ n: Int, port: Int) -> [UInt8] {
            CrashTests.tomatoApproval(n, port: port)
        }

        /// Posts approvals `range` and returns the numbers that got the ACK.
        static func post(_ range: Range<Int>, to daemon: DaemonProcess) -> (acked: [Int], statuses: [Int]) {
            var acked: [Int] = []
            var statuses: [Int] = []
            for n in range {
                let response = try? RawHTTPClient.exchange(
                    host: "127.0.0.1", port: daemon.port, bytes: approval(n, port: daemon.port), timeoutSeconds: 30)
                statuses.append(response?.status ?? -1)
                if response?.status == 200 {
                    #expect(response?.bodyText == "OK")
                    acked.append(n)
                } else {
                    #expect(response?.bodyText != "OK", "no ACK unless committed")
                }
            }
            return (acked, statuses)
        }

        static func filedTIDs(_ daemon: DaemonProcess) throws -> [String] {
            try daemon.queueFiles().map(CrashTests.tid(ofQueueFile:))
        }

        static func tid(_ n: Int) -> String { "tomato001m" + String(format: "%020d", n) }

        static var canMount: Bool {
            let probe = FileManager.default.temporaryDirectory.appendingPathComponent("pgnoti-mount-probe-\(getpid())")
            try? FileManager.default.createDirectory(at: probe, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: probe) }
            guard shell(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe.path]) == 0 else { return false }
            return shell(["umount", probe.path]) == 0
        }

        @discardableResult
        static func shell(_ arguments: [String]) -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return -1 }
            process.waitUntilExit()
            return process.terminationStatus
        }

        /// (a) Another process holds the database's write lock past the busy timeout: requests get
        /// a 500 (never the ACK), nothing is filed for them, and once the lock goes away the daemon
        /// takes notifications again without a restart.
        @Test func aStoreThatCannotCommitGets500AndRecovers() async throws {
            let dir = try DaemonProcess.makeDirectory("fault-store")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            #expect(Self.post(0..<5, to: daemon).acked == Array(0..<5))
            try await daemon.waitForQueue(count: 5)

            var configuration = Configuration()
            configuration.busyMode = .timeout(10)
            let database = try DatabaseQueue(
                path: dir.appendingPathComponent("state/pgnoti.sqlite").path, configuration: configuration)
            let release = ThreadGate()
            defer { release.open() }
            let holding = Shared(false)
            let finished = Shared<String?>(nil)
            // The lock is held on a thread of its own (GRDB's write is synchronous), never on a
            // thread of the cooperative pool.
            let holder = Task {
                try await onOwnThread {
                    do {
                        try database.writeWithoutTransaction { db in
                            try db.inTransaction(.immediate) {
                                holding.withLock { $0 = true }
                                // Bounded, so a test that fails before releasing cannot hang the run.
                                release.wait(timeout: 120)
                                return .rollback
                            }
                        }
                        finished.withLock { $0 = "released" }
                    } catch {
                        finished.withLock { $0 = "\(error)" }
                    }
                }
            }
            try await waitUntil(timeout: .seconds(20), "the lock to be held") {
                if let failure = finished.withLock({ $0 }) { throw HarnessError("could not hold the lock: \(failure)") }
                return holding.withLock { $0 }
            }
            let during = Self.post(5..<7, to: daemon)
            #expect(during.acked.isEmpty)
            #expect(during.statuses.allSatisfy { $0 == 500 }, "\(during.statuses)")
            release.open()
            try await waitUntil(timeout: .seconds(20), "the lock to be released") { finished.withLock { $0 } != nil }
            try await holder.value

            // The PG retries; now they go through, each once.
            #expect(Self.post(5..<10, to: daemon).acked == Array(5..<10))
            try await daemon.waitForQueue(count: 10)
            #expect(Set(try Self.filedTIDs(daemon)) == Set((0..<10).map(Self.tid)))
            let errors = daemon.logObjects.filter { $0["outcome"] as? String == "error" }
            #expect(errors.count == 2)
            #expect(try await daemon.terminate() == 0)
        }

        /// (b) The queue directory becomes unusable (a file where `new/` was): ACKs go on, because
        /// the events wait in the outbox; the relay logs and backs off, and files everything, once,
        /// when the directory is back.
        @Test func anUnusableQueueDirectoryDelaysFilingButNotTheACKs() async throws {
            let dir = try DaemonProcess.makeDirectory("fault-queue")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            #expect(Self.post(0..<3, to: daemon).acked == Array(0..<3))
            try await daemon.waitForQueue(count: 3)

            let moved = dir.appendingPathComponent("state/queue/new.away")
            try FileManager.default.moveItem(at: daemon.queueNew, to: moved)
            try Data("not a directory".utf8).write(to: daemon.queueNew)
            #expect(Self.post(3..<8, to: daemon).acked == Array(3..<8))
            let failures = try await daemon.waitForLog { $0["msg"] as? String == "outbox drain failed; retrying" }
            #expect(!failures.isEmpty)

            try FileManager.default.removeItem(at: daemon.queueNew)
            try FileManager.default.moveItem(at: moved, to: daemon.queueNew)
            try await daemon.waitForQueue(count: 8, timeout: .seconds(60))
            let tids = try Self.filedTIDs(daemon)
            #expect(tids.count == 8 && Set(tids) == Set((0..<8).map(Self.tid)))
            #expect(try await daemon.terminate() == 0)
        }

        /// (c) The disk fills up (a small tmpfs holding the state): nothing that was not stored is
        /// ACKed, nothing ACKed is lost, and it recovers once there is space again.
        @Test(.enabled(if: FaultEndToEndTests.canMount))
        func aFullDiskNeverACKsWhatItCouldNotStoreAndRecovers() async throws {
            let dir = try DaemonProcess.makeDirectory("fault-disk")
            let state = dir.appendingPathComponent("state")
            try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
            try #require(Self.shell(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", state.path]) == 0)
            defer { Self.shell(["umount", "-l", state.path]) }
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            #expect(Self.post(0..<3, to: daemon).acked == Array(0..<3))
            try await daemon.waitForQueue(count: 3)

            // Fill what is left of the tmpfs.
            let filler = state.appendingPathComponent("filler")
            #expect(FileManager.default.createFile(atPath: filler.path, contents: nil))
            let handle = try FileHandle(forWritingTo: filler)
            let block = Data(repeating: 0x66, count: 64 * 1024)
            while (try? handle.write(contentsOf: block)) != nil {}
            try? handle.close()

            let full = Self.post(3..<40, to: daemon)
            #expect(full.statuses.contains(500), "the full disk must show: \(full.statuses)")
            #expect(full.statuses.allSatisfy { $0 == 200 || $0 == 500 })

            try FileManager.default.removeItem(at: filler)
            // Everything the PG did not hear an ACK for, it sends again.
            let retried = Self.post(3..<40, to: daemon)
            #expect(retried.acked == Array(3..<40))
            try await daemon.waitForQueue(count: 40, timeout: .seconds(60))
            let tids = try Self.filedTIDs(daemon)
            #expect(tids.count == 40, "nothing ACKed lost, nothing filed twice")
            #expect(Set(tids) == Set((0..<40).map(Self.tid)))
            #expect(try await daemon.terminate() == 0)
        }
    }
}
