import Foundation
import PGNotiRawHTTP
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A daemon restarted while its queue is unusable must come up and ACK into the ledger and the
/// outbox, as one that was already running does, and file everything once the queue is back.
extension EndToEnd {
    @Suite struct RestartFaultEndToEndTests {
        typealias Fault = FaultEndToEndTests

        @Test(.enabled(if: FaultEndToEndTests.canMount))
        func aRestartOnAReadOnlyQueueStillACKsAndFilesOnceWritable() async throws {
            let dir = try DaemonProcess.makeDirectory("restart-ro")
            let queue = dir.appendingPathComponent("state/queue")
            try FileManager.default.createDirectory(at: queue, withIntermediateDirectories: true)
            _ = try DaemonProcess.writeConfig(in: dir)
            let first = try await DaemonProcess.start(dir)
            #expect(Fault.post(0..<3, to: first).acked == Array(0..<3))
            try await first.waitForQueue(count: 3)

            // The queue's file system goes read-only under the running daemon: it keeps ACKing
            // into its outbox. Then it is killed with events still there.
            // A read-only bind mount over the queue: what every new open sees, whatever the
            // daemon already holds open (a plain remount would refuse while files are open).
            try #require(Fault.shell(["mount", "--bind", queue.path, queue.path]) == 0)
            defer { Fault.shell(["umount", "-l", queue.path]) }
            try #require(Fault.shell(["mount", "-o", "remount,bind,ro", queue.path]) == 0)
            #expect(Fault.post(3..<5, to: first).acked == Array(3..<5))
            try await first.killHard()

            // Restarted on the read-only queue: it starts, ACKs, and says filing fails.
            let second = try await DaemonProcess.start(dir)
            #expect(Fault.post(5..<8, to: second).acked == Array(5..<8))
            let ready = try await second.admin("/readyz")
            #expect(ready.status == 503 && ready.bodyText.contains("queue"), "\(ready.bodyText)")
            #expect(try second.queueFiles().count == 3, "nothing can be filed yet")

            try #require(Fault.shell(["umount", queue.path]) == 0)
            // The relay retries at most 10 s apart.
            try await second.waitForQueue(count: 8, timeout: .seconds(30))
            let tids = try Fault.filedTIDs(second)
            #expect(tids.count == 8 && Set(tids) == Set((0..<8).map(Fault.tid)), "each event once")
            try await waitUntil(timeout: .seconds(20), "readiness back") {
                await (try? second.admin("/readyz").status) == 200
            }
            #expect(try await second.terminate() == 0)
        }

        /// A backup that runs out of space leaves nothing behind, so the next try is not
        /// refused with "already exists".
        @Test(.enabled(if: FaultEndToEndTests.canMount))
        func aBackupOntoAFullDiskLeavesNoPartialFile() async throws {
            let dir = try DaemonProcess.makeDirectory("backup-full")
            let config = try DaemonProcess.writeConfig(in: dir).path
            let daemon = try await DaemonProcess.start(dir)
            #expect(Fault.post(0..<20, to: daemon).acked.count == 20)
            #expect(try await daemon.terminate() == 0)
            let small = dir.appendingPathComponent("small")
            try FileManager.default.createDirectory(at: small, withIntermediateDirectories: true)
            try #require(Fault.shell(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", small.path]) == 0)
            defer { Fault.shell(["umount", "-l", small.path]) }
            let target = small.appendingPathComponent("copy.sqlite").path
            for attempt in 1...2 {
                let result = try await QuarantineEndToEndTests.runSplit(
                    ["backup", target, "--config", config], in: dir)
                #expect(result.status == 1, "attempt \(attempt): \(result)")
                #expect(!result.stderr.contains("already exists"), "attempt \(attempt): \(result.stderr)")
                #expect(try FileManager.default.contentsOfDirectory(atPath: small.path).isEmpty, "nothing left behind")
            }
        }

        @Test(.enabled(if: FaultEndToEndTests.canMount))
        func aRestartWithTheQueueMissingOrFullStillACKs() async throws {
            let dir = try DaemonProcess.makeDirectory("restart-full")
            let queue = dir.appendingPathComponent("state/queue")
            try FileManager.default.createDirectory(at: queue, withIntermediateDirectories: true)
            try #require(Fault.shell(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", queue.path]) == 0)
            defer { Fault.shell(["umount", "-l", queue.path]) }
            _ = try DaemonProcess.writeConfig(in: dir)
            let first = try await DaemonProcess.start(dir)
            #expect(Fault.post(0..<2, to: first).acked == Array(0..<2))
            try await first.waitForQueue(count: 2)
            try await first.killHard()

            // Full: a filler takes every block of the queue's file system.
            let filler = queue.appendingPathComponent("filler")
            #expect(FileManager.default.createFile(atPath: filler.path, contents: nil))
            let handle = try FileHandle(forWritingTo: filler)
            let block = Data(repeating: 0x66, count: 64 * 1024)
            while (try? handle.write(contentsOf: block)) != nil {}
            try? handle.close()

            let second = try await DaemonProcess.start(dir)
            #expect(Fault.post(2..<5, to: second).acked == Array(2..<5))
            try FileManager.default.removeItem(at: filler)
            try await second.waitForQueue(count: 5, timeout: .seconds(30))
            #expect(Set(try Fault.filedTIDs(second)) == Set((0..<5).map(Fault.tid)))
            #expect(try await second.terminate() == 0)
        }
    }
}
