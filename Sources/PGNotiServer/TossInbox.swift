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
/// A file is read once it has settled: renamed in (inotify says so), or its size and
/// modification time both unchanged for `stable_seconds`. Each read files only the rows not
/// filed before and never goes past a line without its newline (the importer remembers how far
/// it got and notices a rewrite); such a last line is taken only once its day is over and the
/// file has not changed for `final_after_minutes`.
///
/// Files are read day by day, a day's AUTH file before its REV file, and a REV file waits until
/// the same day's AUTH file has been read as it is now (or, if none comes, until the day is
/// final): a cancel is not filed ahead of the approval pushed with it.
///
/// Once a day is final (`final_after_minutes` past the midnight that ends it, after the 00:05
/// push of the day in full), a file read to its end that has not changed since (renamed in, or
/// unchanged for `final_after_minutes`) moves to `inbox/done/`, after one more look that it has
/// not changed in the meantime.
final class TossInbox: Service, Sendable {
    let directory: String
    let importer: TossImporter
    let progress: any SourceProgress
    let stable: Duration
    let poll: Duration
    let finalAfterMinutes: Int
    let logger: Logger
    /// Called after a file was read, before it may move to done/ (tests change the file here).
    let afterRead: (@Sendable (String) -> Void)?

    init(
        directory: String, importer: TossImporter, progress: any SourceProgress, stable: Duration, poll: Duration,
        finalAfterMinutes: Int, logger: Logger, afterRead: (@Sendable (String) -> Void)? = nil
    ) {
        self.directory = directory
        self.importer = importer
        self.progress = progress
        self.stable = stable
        self.poll = poll
        self.finalAfterMinutes = finalAfterMinutes
        self.logger = logger
        self.afterRead = afterRead
    }

    var doneDirectory: String { directory + "/done" }

    /// A file's size and modification time (ns since 1970): what "unchanged" compares.
    struct Stamp: Equatable {
        var size: Int
        var modified: Int64

        var modifiedAt: Date { Date(timeIntervalSince1970: Double(modified) / 1e9) }
    }

    /// What the watcher knows of one file between looks.
    struct Seen {
        var stamp: Stamp
        /// When this size and time were first seen.
        var since: ContinuousClock.Instant
        /// Renamed into the inbox (inotify IN_MOVED_TO) and not changed since: complete.
        var renamedIn: Bool
        /// The file as it was at the last read that stored every row, and, if that read left a
        /// last line without its newline, when that line is due to be taken as it is.
        var ingested: (stamp: Stamp, pendingDueAt: Date?)?
        /// A REV file waiting for its day's AUTH file has said so (once per wait).
        var saidWaiting = false
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

    /// One look at the inbox. `wallClock` decides which days are over and final and how long a
    /// file has been unchanged; `monotonic` measures `stable_seconds` (both parameters for tests).
    func scan(
        _ seen: inout [String: Seen], renamedIn: Set<String>, wallClock: Date = Date(),
        monotonic: ContinuousClock.Instant = .now
    ) async {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        // Day by day, and a day's AUTH before its REV: the approvals a push carries are filed
        // before the cancels it carries.
        let files = names.compactMap { name in TossFile.Name(fileName: name).map { (name, $0) } }
            .sorted { ($0.1.date, $0.1.kind == .rev ? 1 : 0, $0.0) < ($1.1.date, $1.1.kind == .rev ? 1 : 0, $1.0) }
        for (name, fileName) in files {
            let path = directory + "/" + name
            guard let stamp = Self.stamp(path) else { continue }
            var entry = seen[name] ?? Seen(stamp: stamp, since: monotonic, renamedIn: false, ingested: nil)
            if entry.stamp != stamp {
                entry.stamp = stamp
                entry.since = monotonic
                entry.renamedIn = false
            }
            if renamedIn.contains(name) { entry.renamedIn = true }
            seen[name] = entry
            // Settled: renamed in, or neither size nor modification time changed for a while.
            guard entry.renamedIn || monotonic - entry.since >= stable else { continue }

            if fileName.kind == .rev, await !approvalsRead(before: fileName, seen, wallClock: wallClock) {
                if seen[name]?.saidWaiting != true {
                    seen[name]?.saidWaiting = true
                    logger.info(
                        "Toss REV file waits until the same day's AUTH file has been read as it is now",
                        metadata: [
                            "file": "\(name)",
                            "at_the_latest":
                                "\(KoreanTime.afterDay(fileName.date, minutes: finalAfterMinutes).map(KoreanTime.iso8601) ?? "-")",
                        ])
                }
                continue
            }
            seen[name]?.saidWaiting = false

            let unchanged = entry.ingested?.stamp == stamp
            let lastLineDue = entry.ingested?.pendingDueAt.map { wallClock >= $0 } ?? false
            if !unchanged || lastLineDue {
                await read(name, path, &seen, wallClock: wallClock)
                afterRead?(name)
            }
            if isFinal(fileName, wallClock: wallClock), let entry = seen[name], let ingested = entry.ingested,
                ingested.pendingDueAt == nil, ingested.stamp == entry.stamp,
                entry.renamedIn || quietLongEnough(entry.stamp, wallClock: wallClock)
            {
                // One more look right before the move: a file that changed since it was read
                // (an upload that resumed) stays, and is read again at the next look.
                guard Self.stamp(path) == ingested.stamp else {
                    logger.info(
                        "Toss file changed since it was read: not moved to done/", metadata: ["file": "\(name)"])
                    continue
                }
                if finalize(name, fileName) {
                    seen[name] = nil
                    await markFinal(name)
                }
            }
        }
        // Forget files that went away.
        let present = Set(names)
        for name in seen.keys where !present.contains(name) { seen[name] = nil }
    }

    /// Whether a REV file may be read: the same day's AUTH file is in the inbox and has been
    /// read as it is now, or it is not and was read before (it may be in done/), or the day is
    /// final and none came.
    private func approvalsRead(before rev: TossFile.Name, _ seen: [String: Seen], wallClock: Date) async
        -> Bool
    {
        if isFinal(rev, wallClock: wallClock) { return true }
        let auth = TossFile.Name(merchantID: rev.merchantID, kind: .auth, date: rev.date).fileName
        if let stamp = Self.stamp(directory + "/" + auth) {
            return seen[auth]?.ingested?.stamp == stamp
        }
        return ((try? await progress.tossProgress(fileName: auth)) ?? nil) != nil
    }

    /// The day's files get no more pushes: `final_after_minutes` past the midnight that ends it.
    private func isFinal(_ fileName: TossFile.Name, wallClock: Date) -> Bool {
        KoreanTime.afterDay(fileName.date, minutes: finalAfterMinutes).map { wallClock >= $0 } ?? false
    }

    /// Unchanged for `final_after_minutes` (and at least `stable_seconds`): no upload is
    /// stalled that long.
    private func quietLongEnough(_ stamp: Stamp, wallClock: Date) -> Bool {
        let seconds = max(Double(finalAfterMinutes) * 60, Double(stable.components.seconds))
        return wallClock.timeIntervalSince(stamp.modifiedAt) >= seconds
    }

    private func read(_ name: String, _ path: String, _ seen: inout [String: Seen], wallClock: Date) async {
        guard let (bytes, before, after) = Self.contents(path) else {
            logger.warning("Toss file not readable by pgnoti (check its group and mode)", metadata: ["file": "\(name)"])
            return
        }
        // Changed while it was read: what was read is used (only whole lines are taken), but it
        // is read again at the next look.
        let settled = before == after
        do {
            let summary = try await importer.ingest(
                fileName: name, bytes: bytes, modifiedAt: after.modifiedAt, now: wallClock)
            if summary.errors == 0 && settled { seen[name]?.ingested = (after, summary.unterminatedDueAt) }
        } catch TossImporter.Failure.noReadableRow(let file) {
            // The bytes are at fault, not the moment: said once, and read again only once the
            // file changes (else a final file would be retried, and logged, at every look
            // instead of moving to done/).
            logger.error(
                "Toss file not read",
                metadata: ["file": "\(name)", "error": "\(TossImporter.Failure.noReadableRow(file))"])
            if settled { seen[name]?.ingested = (after, nil) }
        } catch {
            logger.error("Toss file not read", metadata: ["file": "\(name)", "error": "\(error)"])
        }
    }

    /// A regular file's size and modification time; nil for anything else or a file gone.
    static func stamp(_ path: String) -> Stamp? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Stamp(info)
    }

    /// The whole file, and its stamp before and after reading it.
    static func contents(_ path: String) -> ([UInt8], Stamp, Stamp)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        let before = Stamp(info)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(before.size)
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { break }
            bytes.append(contentsOf: buffer[..<n])
        }
        guard fstat(fd, &info) == 0 else { return nil }
        return (bytes, before, Stamp(info))
    }

    private func finalize(_ name: String, _ fileName: TossFile.Name) -> Bool {
        guard rename(directory + "/" + name, doneDirectory + "/" + name) == 0 else {
            logger.warning(
                "a final Toss file could not be moved to done/",
                metadata: ["file": "\(name)", "error": "\(String(cString: strerror(errno)))"])
            return false
        }
        logger.info("Toss file final: moved to done/", metadata: ["file": "\(name)", "day": "\(fileName.date)"])
        return true
    }

    private func markFinal(_ name: String) async {
        guard var file = try? await progress.tossProgress(fileName: name) else { return }
        file.finalizedAtMicros = Date().unixMicroseconds
        try? await progress.saveTossProgress(file)
    }
}

extension TossInbox.Stamp {
    init(_ info: stat) {
        self.init(
            size: Int(info.st_size), modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }
}
