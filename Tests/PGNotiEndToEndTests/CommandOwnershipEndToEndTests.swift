import Foundation
import GRDB
import PGNotiConfig
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Operator commands against the real binary, on the state a daemon left: run as root they
/// become the state directory's owner, `redeliver` takes a time window, `purge` reaches the
/// quarantine, and without `--config` they find the sandbox state under `./var`.
extension EndToEnd {
    @Suite struct CommandOwnershipEndToEndTests {
        static func run(_ arguments: [String], in dir: URL) async throws -> (
            status: Int32, stdout: String, stderr: String
        ) {
            try await QuarantineEndToEndTests.runSplit(arguments, in: dir)
        }

        /// Lines of `--json` output as objects.
        static func objects(_ output: String) -> [[String: Any]] {
            output.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
        }

        /// `chown -R uid:gid path`, as an operator (or tmpfiles.d) hands the state to the service user.
        static func chownRecursively(_ path: URL, uid: uid_t, gid: gid_t) async throws {
            let chown = try await runProcess(
                URL(fileURLWithPath: "/usr/bin/chown"), ["-R", "\(uid):\(gid)", path.path])
            guard chown.status == 0 else { throw HarnessError("chown -R \(path.path) failed") }
        }

        /// Every file and directory under `root` (itself included) with its owner, not following links.
        static func owners(under root: URL) throws -> [(path: String, uid: uid_t, gid: gid_t)] {
            var paths = [root.path]
            guard let walker = FileManager.default.enumerator(atPath: root.path) else {
                throw HarnessError("cannot list \(root.path)")
            }
            while let relative = walker.nextObject() as? String {
                paths.append(root.appendingPathComponent(relative).path)
            }
            return try paths.map { path in
                var info = stat()
                guard lstat(path, &info) == 0 else {
                    throw HarnessError("lstat \(path): \(String(cString: strerror(errno)))")
                }
                return (path, info.st_uid, info.st_gid)
            }
        }

        /// Checkpoints the database into its main file and leaves WAL mode, which removes the
        /// `-wal` and `-shm` sidecars; the next ledger to open it turns WAL mode on again.
        static func dropSidecars(_ database: URL) throws {
            let queue = try DatabaseQueue(path: database.path)
            try queue.writeWithoutTransaction { try $0.execute(sql: "PRAGMA journal_mode = DELETE") }
            try queue.close()
            for suffix in ["-wal", "-shm"] {
                #expect(!FileManager.default.fileExists(atPath: database.path + suffix), "\(suffix) is gone")
            }
        }

        /// A time for `--since`/`--until`, in UTC to the millisecond.
        static func iso(_ date: Date) -> String {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(secondsFromGMT: 0)
            formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
            return formatter.string(from: date)
        }

        /// The test merchant's key file (wrong or right) and Smartro and TomatoPay tables.
        static func providers(_ dir: URL) -> String {
            QuarantineEndToEndTests.smartroOnly(dir) + "\n\n[tomatopay]\nallow_sources = [\"127.0.0.0/8\", \"::1\"]\n"
        }

        /// Run as root on state owned by another user (as the packaged service user owns
        /// /var/lib/pgnoti), `quarantine list`, `events list` and `quarantine release` leave every
        /// file they create, the database's sidecars and the released event's queue file, owned by
        /// that user, so the daemon and the consumers in its group can still open them.
        @Test func commandsRunAsRootLeaveTheStateOwnedByItsOwner() async throws {
            #expect(geteuid() == 0, "tests run as root; without it there is nothing to adopt")
            guard geteuid() == 0 else { return }
            let dir = try DaemonProcess.makeDirectory("owner")
            // The service user must reach the state through every parent directory.
            chmod(dir.path, 0o755)
            try QuarantineEndToEndTests.writeKeys(QuarantineEndToEndTests.wrongKey, in: dir)
            let config = try DaemonProcess.writeConfig(in: dir, providers: Self.providers(dir)).path
            let daemon = try await DaemonProcess.start(dir)
            let fixture = try TrustEndToEndTests.fixture("smartro", "approve-card")
            #expect(try daemon.send(fixture: fixture.request).status == 403)
            let tomato = try TrustEndToEndTests.fixture("tomatopay", "approve")
            #expect(try daemon.send(fixture: tomato.request).status == 200)
            try await daemon.waitForQueue(count: 1)
            #expect(try await daemon.terminate() == 0)

            let state = dir.appendingPathComponent("state")
            // Out of WAL mode and back is how the sidecars go away for sure: then whatever
            // `-wal`/`-shm` is there afterwards, a command created. (SQLite itself hands a
            // sidecar root creates to the database file's owner; the queue file the release
            // writes is what only becoming the owner keeps out of root's hands.)
            try Self.dropSidecars(state.appendingPathComponent("pgnoti.sqlite"))
            let nobody: uid_t = 65534
            try await Self.chownRecursively(state, uid: nobody, gid: nobody)

            let list = try await Self.run(["quarantine", "list", "--json", "--config", config], in: dir)
            #expect(list.status == 0, "\(list.stderr)")
            let items = Self.objects(list.stdout).filter { $0["reason"] as? String == "signature_mismatch" }
            #expect(items.count == 1, "\(list.stdout)")
            let id = try #require(items.first?["id"] as? Int)

            let events = try await Self.run(["events", "list", "--json", "--config", config], in: dir)
            #expect(events.status == 0, "\(events.stderr)")
            #expect(Self.objects(events.stdout).map { $0["tid"] as? String } == [tomato.expect["tid"] as? String])

            try QuarantineEndToEndTests.writeKeys(Config.smartroTestKey, in: dir)
            let released = try await Self.run(["quarantine", "release", String(id), "--config", config], in: dir)
            #expect(released.status == 0, "\(released.stderr)")
            #expect(released.stdout.hasPrefix("accepted "), "\(released)")
            #expect(released.stderr.contains("filed 1 event(s)"), "no daemon runs: the command files it")

            let eventID = String(released.stdout.trimmingCharacters(in: .newlines).dropFirst("accepted ".count))
            let files = try daemon.queueFiles()
            #expect(files.count == 2, "the TomatoPay event and the released one")
            let filed = try #require(
                try files.first {
                    (try JSONSerialization.jsonObject(with: Data(contentsOf: $0)) as? [String: Any])?["id"] as? String
                        == eventID
                })
            let after = try Self.owners(under: state)
            #expect(after.contains { $0.path == filed.path })
            for entry in after {
                #expect(
                    entry.uid == nobody && entry.gid == nobody, "\(entry.path) is owned by \(entry.uid):\(entry.gid)")
            }

            // A backup is the operator's file, written where root asks, which the state's owner
            // may not write to: it does not switch owner for that.
            let rootOnly = dir.appendingPathComponent("root-only")
            try FileManager.default.createDirectory(at: rootOnly, withIntermediateDirectories: false)
            chmod(rootOnly.path, 0o700)
            let copy = rootOnly.appendingPathComponent("copy.sqlite").path
            let backup = try await Self.run(["backup", copy, "--config", config], in: dir)
            #expect(backup.status == 0, "\(backup.stderr)")
            #expect(FileManager.default.fileExists(atPath: copy))
        }

        /// `redeliver --since T --until T2` puts back the events received in [T, T2) and no
        /// other, under their original file names and bytes.
        @Test func redeliverPutsBackExactlyTheEventsOfTheWindow() async throws {
            let dir = try DaemonProcess.makeDirectory("redeliver-window")
            let config = try DaemonProcess.writeConfig(in: dir).path
            let daemon = try await DaemonProcess.start(dir)
            let fixtures = try [
                ("smartro", "approve-card"), ("smartro", "vbank-issued"), ("innopay", "approve-card"),
                ("tomatopay", "approve"),
            ].map { try TrustEndToEndTests.fixture($0.0, $0.1) }
            // The window opens after the first notification's response and closes before the last
            // one's request, with a pause either side so the clocks cannot blur the edge.
            var since = Date()
            var until = Date()
            for (index, fixture) in fixtures.enumerated() {
                // Time must pass on either side of each edge (there is nothing to wait for).
                if index == 1 {
                    try await Task.sleep(for: .milliseconds(100))
                    since = Date()
                    try await Task.sleep(for: .milliseconds(100))
                }
                if index == 3 {
                    try await Task.sleep(for: .milliseconds(100))
                    until = Date()
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(try daemon.send(fixture: fixture.request).status == 200, "\(fixture)")
            }
            try await daemon.waitForQueue(count: 4)
            #expect(try await daemon.terminate() == 0)

            let listed = try await Self.run(["events", "list", "--json", "--config", config], in: dir)
            var fileOf: [String: String] = [:]
            for object in Self.objects(listed.stdout) {
                if let tid = object["tid"] as? String, let file = object["queue_file"] as? String { fileOf[tid] = file }
            }
            let names = try fixtures.map { fixture -> String in
                let tid = try #require(fixture.expect["tid"] as? String)
                return try #require(fileOf[tid])
            }
            var originals: [String: Data] = [:]
            for file in try daemon.queueFiles() {
                originals[file.lastPathComponent] = try Data(contentsOf: file)
                try FileManager.default.removeItem(at: file)
            }
            #expect(Set(originals.keys) == Set(names))

            let redeliver = try await Self.run(
                ["redeliver", "--since", Self.iso(since), "--until", Self.iso(until), "--config", config], in: dir)
            #expect(redeliver.status == 0, "\(redeliver.stderr)")
            #expect(redeliver.stdout.contains("queued 2 event(s)"), "\(redeliver.stdout)")
            #expect(redeliver.stdout.contains("filed 2 into"), "no daemon runs: the command files them")
            let back = try daemon.queueFiles().map(\.lastPathComponent)
            #expect(back == [names[1], names[2]].sorted())
            for name in back {
                #expect(try Data(contentsOf: daemon.queueNew.appendingPathComponent(name)) == originals[name])
            }

            // An open window from the start: the first one only.
            let head = try await Self.run(
                ["redeliver", "--since", "2000-01-01", "--until", Self.iso(since), "--config", config], in: dir)
            #expect(head.stdout.contains("queued 1 event(s)"), "\(head.stdout)")
            #expect(try daemon.queueFiles().map(\.lastPathComponent) == [names[0], names[1], names[2]].sorted())
        }

        /// `purge` clears the raw bytes of quarantined requests too: `quarantine show` has no
        /// decoded fields and `--raw` no bytes left, while the row itself stays listed.
        @Test func purgeRemovesTheRawBodiesOfQuarantinedRequests() async throws {
            let dir = try DaemonProcess.makeDirectory("purge-quarantine")
            try QuarantineEndToEndTests.writeKeys(QuarantineEndToEndTests.wrongKey, in: dir)
            let config = try DaemonProcess.writeConfig(in: dir, providers: QuarantineEndToEndTests.smartroOnly(dir))
                .path
            let daemon = try await DaemonProcess.start(dir)
            let fixture = try TrustEndToEndTests.fixture("smartro", "approve-card")
            #expect(try daemon.send(fixture: fixture.request).status == 403)
            let tid = try #require(fixture.expect["tid"] as? String)
            // Refused requests ride in a later group commit than their response.
            var id = 0
            try await waitUntil(timeout: .seconds(20), "the refusal in the quarantine") {
                let list = try await Self.run(["quarantine", "list", "--json", "--config", config], in: dir)
                id = Self.objects(list.stdout).first { $0["tid"] as? String == tid }?["id"] as? Int ?? 0
                return id > 0
            }
            let shown = try await Self.run(["quarantine", "show", String(id), "--raw", "--config", config], in: dir)
            #expect(shown.stdout.contains("김**") && shown.stdout.contains("BuyerTel=010-0000-0001"))

            let purge = try await Self.run(
                ["purge", "--older-than", "0s", "--force", "--yes", "--config", config], in: dir)
            #expect(purge.status == 0, "\(purge.stderr)")
            #expect(purge.stdout.contains("1 quarantined request(s)"), "\(purge.stdout)")

            let show = try await Self.run(["quarantine", "show", String(id), "--config", config], in: dir)
            #expect(show.status == 0, "\(show.stderr)")
            #expect(show.stdout.contains("signature_mismatch"), "the row is still there")
            #expect(!show.stdout.contains("김똠순"), "\(show.stdout)")
            #expect(!show.stdout.contains("ORD-20241123-0001"), "\(show.stdout)")
            let raw = try await Self.run(["quarantine", "show", String(id), "--raw", "--config", config], in: dir)
            #expect(!raw.stdout.contains("BuyerTel"), "\(raw.stdout)")
            #expect(!raw.stdout.contains("Amt="), "\(raw.stdout)")

            let list = try await Self.run(["quarantine", "list", "--json", "--config", config], in: dir)
            let rows = Self.objects(list.stdout)
            #expect(rows.count == 1 && rows.first?["id"] as? Int == id, "\(list.stdout)")
            #expect(rows.first?["reason"] as? String == "signature_mismatch")
            #expect(rows.first?["purged"] as? Bool == true, "\(list.stdout)")
            #expect(show.stdout.contains("request:       purged"), "\(show.stdout)")
            // Nothing is left to run again, and release says so rather than blaming a field.
            let release = try await Self.run(["quarantine", "release", String(id), "--config", config], in: dir)
            #expect(release.stdout.hasPrefix("refused purged"), "\(release.stdout)")
            // A second purge finds nothing left to clear.
            let again = try await Self.run(
                ["purge", "--older-than", "0s", "--force", "--yes", "--config", config], in: dir)
            #expect(again.stdout.contains("0 quarantined request(s)"), "\(again.stdout)")
            #expect(try await daemon.terminate() == 0)
        }

        /// Without `--config`, a command reads the sandbox state under `./var`, the state that
        /// `serve` without a config writes, while that daemon still runs.
        @Test func commandsWithoutConfigReadTheSandboxStateUnderVar() async throws {
            let dir = try DaemonProcess.makeDirectory("sandbox-cli")
            let daemon = try await DaemonProcess.start(
                dir, arguments: ["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            let fixture = try TrustEndToEndTests.fixture("smartro", "approve-card")
            #expect(try daemon.send(fixture: fixture.request).status == 200)
            let tid = try #require(fixture.expect["tid"] as? String)
            let new = dir.appendingPathComponent("var/queue/new")
            try await waitUntil(timeout: .seconds(20), "the event in var/queue/new") {
                (try? FileManager.default.contentsOfDirectory(atPath: new.path).count) == 1
            }
            let file = try #require(try FileManager.default.contentsOfDirectory(atPath: new.path).first)

            let list = try await Self.run(["events", "list", "--json"], in: dir)
            #expect(list.status == 0, "\(list.stderr)")
            let events = Self.objects(list.stdout)
            #expect(events.count == 1, "\(list.stdout)")
            #expect(events.first?["tid"] as? String == tid)
            #expect(events.first?["queue_file"] as? String == file)
            let show = try await Self.run(["events", "show", tid], in: dir)
            #expect(show.status == 0 && show.stdout.contains(file), "\(show)")
            let stats = try await Self.run(["stats", "--json"], in: dir)
            #expect(stats.status == 0, "\(stats.stderr)")
            #expect(Self.objects(stats.stdout).first?["queue_new_files"] as? Int == 1, "\(stats.stdout)")
            #expect(try await daemon.terminate() == 0)

            // Elsewhere there is no state, and the error says where it looked.
            let elsewhere = try DaemonProcess.makeDirectory("sandbox-cli-empty")
            let missing = try await Self.run(["events", "list"], in: elsewhere)
            #expect(missing.status == 1, "a failure, not a usage error")
            #expect(missing.stderr.contains("./var/pgnoti.sqlite"), "\(missing.stderr)")
            #expect(!missing.stderr.contains("USAGE") && !missing.stderr.contains("Usage"), "\(missing.stderr)")
            // A command that changes state does not make an empty ledger where none was.
            let redeliver = try await Self.run(["redeliver", "--since", "1d"], in: elsewhere)
            #expect(redeliver.status == 1 && redeliver.stderr.contains("no database"), "\(redeliver.stderr)")
            #expect(!FileManager.default.fileExists(atPath: elsewhere.appendingPathComponent("var").path))
        }
    }
}
