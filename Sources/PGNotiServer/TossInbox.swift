import Foundation
import Logging
import PGNotiCore
import PGNotiIntake
import PGNotiStore
import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// Watches `[toss] inbox`, where Toss's FTP push drops `<mid>_AUTH_<yyyymmdd>.dat` and
/// `_REV_` files at :05, :25 and :45 past every hour, each push the whole day so far.
///
/// A file is read only once it is complete: renamed in (inotify says so), or its size and
/// modification time unchanged for `stable_seconds`. Each read files only the rows not filed
/// before (the importer remembers how far it got and notices a rewrite). Once a day is final,
/// after the 00:05 push of the day after, its files are read once more as whole (a last line
/// without its newline is taken then) and move to `inbox/done/`.
final class TossInbox: Service, Sendable {
    let directory: String
    let importer: TossImporter
    let ledger: Ledger
    let stable: Duration
    let poll: Duration
    let finalAfterMinutes: Int
    let logger: Logger

    init(
        directory: String, importer: TossImporter, ledger: Ledger, stable: Duration, poll: Duration,
        finalAfterMinutes: Int, logger: Logger
    ) {
        self.directory = directory
        self.importer = importer
        self.ledger = ledger
        self.stable = stable
        self.poll = poll
        self.finalAfterMinutes = finalAfterMinutes
        self.logger = logger
    }

    var doneDirectory: String { directory + "/done" }

    /// What the watcher knows of one file between looks.
    struct Seen {
        var size: Int
        var modified: Int64
        /// When this size and time were first seen.
        var since: ContinuousClock.Instant
        /// Renamed into the inbox (inotify IN_MOVED_TO) and not changed since: complete.
        var renamedIn: Bool
        /// Size and time at the last read that stored every row, and whether that read took the
        /// file as whole (a last line without its newline included).
        var ingested: (size: Int, modified: Int64, whole: Bool)?
    }

    func run() async throws {
        do {
            try FileManager.default.createDirectory(atPath: doneDirectory, withIntermediateDirectories: true)
        } catch {
            logger.error(
                "Toss inbox unusable; files will not be read until it is fixed and the daemon restarted",
                metadata: ["inbox": "\(directory)", "error": "\(error.localizedDescription)"])
            return
        }
        let watcher = InotifyWatcher(directory: directory, logger: logger)
        logger.info(
            "watching the Toss inbox",
            metadata: [
                "inbox": "\(directory)", "inotify": .stringConvertible(watcher != nil),
                "stable_seconds": .stringConvertible(stable.components.seconds),
            ])
        await cancelWhenGracefulShutdown {
            var seen: [String: Seen] = [:]
            while !Task.isCancelled {
                let renamed = watcher?.drainRenamedIn() ?? []
                await self.scan(&seen, renamedIn: Set(renamed))
                if let watcher {
                    await watcher.wait(upTo: self.poll)
                } else {
                    try? await Task.sleep(for: self.poll)
                }
            }
        }
        watcher?.close()
    }

    /// One look at the inbox. `wallClock` decides which days are final (a parameter for tests).
    func scan(_ seen: inout [String: Seen], renamedIn: Set<String>, wallClock: Date = Date()) async {
        let now = ContinuousClock.now
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        for name in names {
            guard let fileName = TossFile.Name(fileName: name) else { continue }
            let path = directory + "/" + name
            var info = stat()
            guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            let size = Int(info.st_size)
            let modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
            var entry =
                seen[name] ?? Seen(size: size, modified: modified, since: now, renamedIn: false, ingested: nil)
            if entry.size != size || entry.modified != modified {
                entry.size = size
                entry.modified = modified
                entry.since = now
                entry.renamedIn = false
            }
            if renamedIn.contains(name) { entry.renamedIn = true }
            seen[name] = entry
            let complete = entry.renamedIn || now - entry.since >= stable
            guard complete else { continue }

            let finalAt = KoreanTime.afterDay(fileName.date, minutes: finalAfterMinutes)
            let isFinal = finalAt.map { wallClock >= $0 } ?? false
            // A last line without its newline is taken only from a file known to be whole:
            // renamed in, or final. A merely quiet file may be an upload that stalled.
            let whole = entry.renamedIn || isFinal
            let unchanged = entry.ingested.map { $0.size == size && $0.modified == modified } ?? false
            // A file read while it might still grow is read once more when its day turns final,
            // so that an unterminated last line is filed before the file moves to done/.
            if !unchanged || (whole && entry.ingested?.whole != true) {
                guard let data = FileManager.default.contents(atPath: path) else {
                    logger.warning(
                        "Toss file not readable by pgnoti (check its group and mode)", metadata: ["file": "\(name)"])
                    continue
                }
                do {
                    let summary = try await importer.ingest(fileName: name, bytes: [UInt8](data), complete: whole)
                    if summary.errors == 0 { seen[name]?.ingested = (size, modified, whole) }
                } catch TossImporter.Failure.noReadableRow(let file) {
                    // The bytes are at fault, not the moment: said once, and read again only
                    // once the file changes (else a final file would be retried, and logged, at
                    // every look instead of moving to done/).
                    logger.error(
                        "Toss file not read",
                        metadata: ["file": "\(name)", "error": "\(TossImporter.Failure.noReadableRow(file))"])
                    seen[name]?.ingested = (size, modified, whole)
                } catch {
                    logger.error("Toss file not read", metadata: ["file": "\(name)", "error": "\(error)"])
                    continue
                }
            }
            // Final once the day after has had its 00:05 push, and the file has been read whole.
            if isFinal, let ingested = seen[name]?.ingested, ingested.whole, ingested.size == size,
                ingested.modified == modified
            {
                finalize(name, fileName)
                seen[name] = nil
                await markFinal(name)
            }
        }
        // Forget files that went away.
        let present = Set(names)
        for name in seen.keys where !present.contains(name) { seen[name] = nil }
    }

    private func finalize(_ name: String, _ fileName: TossFile.Name) {
        guard rename(directory + "/" + name, doneDirectory + "/" + name) == 0 else {
            logger.warning(
                "a final Toss file could not be moved to done/",
                metadata: ["file": "\(name)", "error": "\(String(cString: strerror(errno)))"])
            return
        }
        logger.info("Toss file final: moved to done/", metadata: ["file": "\(name)", "day": "\(fileName.date)"])
    }

    private func markFinal(_ name: String) async {
        guard var progress = try? await ledger.tossProgress(fileName: name) else { return }
        progress.finalizedAtMicros = Date().unixMicroseconds
        try? await ledger.saveTossProgress(progress)
    }
}

/// inotify on one directory: which files were renamed into it, and a wake-up when anything was
/// written or moved. nil where inotify is unavailable; the inbox then only polls.
final class InotifyWatcher: @unchecked Sendable {
    private let fd: Int32
    private let state = NSLock()
    private var renamed: [String] = []
    private var pending = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var closed = false

    init?(directory: String, logger: Logger) {
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        let mask = UInt32(IN_MOVED_TO) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_CREATE) | UInt32(IN_MODIFY)
        guard inotify_add_watch(fd, directory, mask) >= 0 else {
            logger.warning("inotify unavailable for the Toss inbox; polling it", metadata: ["inbox": "\(directory)"])
            Glibc.close(fd)
            return nil
        }
        self.fd = fd
        Thread.detachNewThread { [self] in readLoop() }
    }

    /// Blocks in read(2) on its own thread, never on the cooperative pool.
    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                return
            }
            var names: [String] = []
            var offset = 0
            while offset + 16 <= n {
                let mask =
                    UInt32(buffer[offset + 4]) | UInt32(buffer[offset + 5]) << 8
                    | UInt32(buffer[offset + 6]) << 16 | UInt32(buffer[offset + 7]) << 24
                let length = Int(
                    UInt32(buffer[offset + 12]) | UInt32(buffer[offset + 13]) << 8 | UInt32(buffer[offset + 14]) << 16
                        | UInt32(buffer[offset + 15]) << 24)
                let nameBytes = buffer[(offset + 16)..<min(n, offset + 16 + length)].prefix { $0 != 0 }
                if mask & UInt32(IN_MOVED_TO) != 0 { names.append(String(decoding: nameBytes, as: UTF8.self)) }
                offset += 16 + length
            }
            let toResume: [CheckedContinuation<Void, Never>] = state.withLock {
                renamed += names
                pending = true
                defer { waiters.removeAll() }
                return waiters
            }
            for waiter in toResume { waiter.resume() }
        }
    }

    func drainRenamedIn() -> [String] {
        state.withLock {
            defer {
                renamed.removeAll()
                pending = false
            }
            return renamed
        }
    }

    /// Returns on the next inotify event, or after `timeout`.
    func wait(upTo timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow: Bool = self.state.withLock {
                        if self.pending || self.closed { return true }
                        self.waiters.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
            // The continuation task may still be parked: wake every waiter so it can finish.
            let waiting: [CheckedContinuation<Void, Never>] = self.state.withLock {
                defer { self.waiters.removeAll() }
                return self.waiters
            }
            for waiter in waiting { waiter.resume() }
        }
    }

    func close() {
        state.withLock { closed = true }
        Glibc.close(fd)
    }
}
