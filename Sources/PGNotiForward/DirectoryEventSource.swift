import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The queue directory as the forwarder's source: claims move an event from `new/` into
/// `forward/cur/`, outcomes move it to `done/` or `failed/`, and a retry's schedule is a small
/// record in `forward/state/`.
///
/// The queue is listed once at start; after that the index is kept current by the claims and
/// outcomes themselves and by inotify, which tells of what the relay files into `new/` and of
/// what `forward retry` brings back into `cur/`. Where inotify is unavailable, `new/` is listed
/// once the index has nothing left from it, and `cur/` once a second.
public final class DirectoryEventSource: EventSource {
    let layout: ForwardLayout
    let settings: ForwardSettings
    let logger: Logger
    /// Directory listings made so far (start, safety rescans, pruning): for tests, which check
    /// that a backlog is not listed per delivery.
    public let listings = Atomic<Int>(0)
    private let state = Mutex(State())

    struct State: Sendable {
        var watcher: DirectoryWatcher?
        var scans = Scans(new: .now, cur: .now, full: .now, watch: .now)
        var published = Published()
    }

    /// When the directories were last listed.
    struct Scans {
        var new: ContinuousClock.Instant
        var cur: ContinuousClock.Instant
        var full: ContinuousClock.Instant
        /// When watching was last tried again, after inotify was unavailable or a directory lost.
        var watch: ContinuousClock.Instant
    }

    /// What `in-flight.json` last said, and when it was written.
    struct Published {
        var files: [String]? = nil
        var at = ContinuousClock.now - .seconds(3600)
    }

    public init(layout: ForwardLayout, settings: ForwardSettings, logger: Logger) {
        self.layout = layout
        self.settings = settings
        self.logger = logger
    }

    public var location: String { layout.queue }

    public func start(_ index: inout ForwardIndex) async throws {
        try layout.create()
        let watcher = settings.watch ? DirectoryWatcher(directories: [layout.new, layout.cur]) : nil
        if settings.watch && watcher == nil {
            logger.warning(
                "inotify unavailable: the queue is listed instead", metadata: ["queue": "\(layout.queue)"])
        }
        rescanNew(&index)
        rescanCur(&index)
        state.withLock {
            $0.watcher = watcher
            $0.scans = Scans(new: .now, cur: .now, full: .now, watch: .now)
        }
    }

    public func refresh(_ index: inout ForwardIndex, room: Int) async {
        var state = self.state.withLock { $0 }
        refresh(&index, &state.watcher, &state.scans)
        claim(&index, room: min(room, Self.claimBatch))
        self.state.withLock {
            $0.watcher = state.watcher
            $0.scans = state.scans
        }
    }

    public func mayStartDelivery() -> Bool { true }

    public func pending(_ event: ForwardIndex.Claimed) async -> PendingEvent? {
        // Gone: moved away by someone else (`forward retry` of a stale id, an operator).
        guard let body = FileManager.default.contents(atPath: layout.cur + "/" + event.name) else { return nil }
        return PendingEvent(name: event.name, id: event.id, kind: event.kind, body: [UInt8](body))
    }

    public func delivered(_ event: ForwardIndex.Claimed) async -> SourceWrite {
        do {
            try ForwardLayout.move(layout.cur + "/" + event.name, layout.done + "/" + event.name)
        } catch {
            return .failed("delivered but could not be moved to done/: \(error)")
        }
        Self.touch(layout.done + "/" + event.name)
        unlink(layout.stateFile(for: event.name))
        return .recorded
    }

    public func retryLater(_ event: ForwardIndex.Claimed, record: DeliveryRecord) async -> SourceWrite {
        do {
            try record.write(to: layout.stateFile(for: event.name))
            return .recorded
        } catch {
            return .failed("could not save the retry state: \(error)")
        }
    }

    public func giveUp(_ event: ForwardIndex.Claimed, record: DeliveryRecord) async -> SourceWrite {
        do {
            try record.write(to: layout.stateFile(for: event.name))
            try ForwardLayout.move(layout.cur + "/" + event.name, layout.failed + "/" + event.name)
            return .recorded
        } catch {
            return .failed("could not be moved to failed/: \(error)")
        }
    }

    /// Rewrites `in-flight.json` when what is being delivered changed: at most every 100 ms,
    /// at once when nothing is.
    public func publish(inFlight files: [String], force: Bool) async -> Bool {
        let published = state.withLock { $0.published }
        guard force || files != published.files else { return true }
        let now = ContinuousClock.now
        guard force || files.isEmpty || now - published.at >= Self.publishInterval else { return false }
        do {
            try InFlightRecord(pid: getpid(), files: files).write(to: layout.inFlightFile)
        } catch {
            logger.warning("could not write in-flight.json", metadata: ["error": "\(error)"])
        }
        state.withLock { $0.published = Published(files: files, at: now) }
        return true
    }

    public func waitForWork(upTo timeout: Duration) async {
        if let watcher = state.withLock({ $0.watcher }) {
            await watcher.wait(upTo: timeout)
        } else {
            try? await Task.sleep(for: timeout)
        }
    }

    /// Removes delivered events older than `keep_done_days`.
    public func pruneDelivered(olderThan keepDone: Duration) async {
        listings.add(1, ordering: .relaxed)
        let cutoff = Date().timeIntervalSince1970 - keepDone.seconds
        var removed = 0
        for name in ForwardLayout.names(in: layout.done) {
            var info = stat()
            let path = layout.done + "/" + name
            if stat(path, &info) == 0, Double(info.st_mtim.tv_sec) < cutoff, unlink(path) == 0 { removed += 1 }
        }
        if removed > 0 {
            logger.info(
                "removed delivered events past keep_done_days", metadata: ["count": .stringConvertible(removed)])
        }
    }

    public func stop() async {
        state.withLock {
            $0.watcher?.close()
            $0.watcher = nil
        }
    }

    static let claimBatch = 512
    static let publishInterval = Duration.milliseconds(100)

    // MARK: - The index

    /// Takes in what inotify saw arrive (or, without it, lists what is due a listing).
    private func refresh(_ index: inout ForwardIndex, _ watcher: inout DirectoryWatcher?, _ scans: inout Scans) {
        let now = ContinuousClock.now
        // new/ or cur/ went away (an operator, a relay that made new/ anew): watch what is
        // there now, or list until that can be done again.
        if let lost = watcher, lost.drainLost() {
            lost.close()
            watcher = DirectoryWatcher(directories: [layout.new, layout.cur])
            logger.warning(
                "a watched queue directory was replaced: watching it again",
                metadata: ["watching": "\(watcher != nil)"])
            scans.full = now - settings.rescanInterval
        } else if watcher == nil, settings.watch, now - scans.watch >= .seconds(1) {
            scans.watch = now
            watcher = DirectoryWatcher(directories: [layout.new, layout.cur])
            if watcher != nil { scans.full = now - settings.rescanInterval }
        }
        if let watcher {
            let changes = watcher.drain()
            if changes.overflowed || now - scans.full >= settings.rescanInterval {
                if changes.overflowed {
                    logger.warning("inotify dropped events: listing the queue again")
                }
                rescanNew(&index)
                rescanCur(&index)
                scans = Scans(new: now, cur: now, full: now, watch: scans.watch)
                return
            }
            for arrival in changes.arrivals where ForwardLayout.isQueueFileName(arrival.name) {
                if arrival.directory == 0 {
                    index.noteUnclaimed(arrival.name)
                } else if index.claimed[arrival.name] == nil {
                    // Brought back by `forward retry` (our own claims are known already, or done).
                    adopt(arrival.name, &index)
                }
            }
            return
        }
        // A backlog is claimed from one listing, in order; what files meanwhile sorts after it.
        if (index.unclaimedCount == 0 && now - scans.new >= settings.scanInterval)
            || now - scans.full >= settings.rescanInterval
        {
            rescanNew(&index)
            scans.new = now
            scans.full = now
        }
        if now - scans.cur >= .seconds(1) {
            rescanCur(&index)
            scans.cur = now
        }
    }

    private func rescanNew(_ index: inout ForwardIndex) {
        listings.add(1, ordering: .relaxed)
        index.replaceUnclaimed(with: ForwardLayout.names(in: layout.new))
    }

    /// Takes on whatever in `cur/` is not known yet: left by a crash, or brought back by
    /// `forward retry`.
    private func rescanCur(_ index: inout ForwardIndex) {
        listings.add(1, ordering: .relaxed)
        for name in ForwardLayout.names(in: layout.cur) where index.claimed[name] == nil {
            adopt(name, &index)
        }
    }

    /// Claims the oldest events of `new/` into `cur/`, a batch at a time so that deliveries
    /// start while a large backlog is being claimed.
    private func claim(_ index: inout ForwardIndex, room: Int) {
        var room = room
        while room > 0, let name = index.takeUnclaimed() {
            do {
                try ForwardLayout.move(layout.new + "/" + name, layout.cur + "/" + name)
            } catch {
                // Gone: claimed by a process that ignored the lock, or removed. Not ours.
                continue
            }
            room -= 1
            adopt(name, &index)
        }
    }

    private func adopt(_ name: String, _ index: inout ForwardIndex) {
        let path = layout.cur + "/" + name
        guard ForwardLayout.isRegularFile(path), let data = FileManager.default.contents(atPath: path) else { return }
        guard let facts = EventFacts(json: data) else {
            logger.error(
                "not a pgnoti event: moved to failed/ without delivery",
                metadata: ["file": "\(name)"])
            let record = DeliveryRecord(
                eventID: ForwardLayout.eventID(fromFileName: name) ?? name, attempts: 0,
                firstAttemptAt: Date().timeIntervalSince1970, lastError: "not a JSON event")
            try? record.write(to: layout.stateFile(for: name))
            try? ForwardLayout.move(path, layout.failed + "/" + name)
            return
        }
        index.add(
            ForwardIndex.Claimed(
                name: name, id: facts.id, kind: facts.kind, lane: facts.lane,
                record: DeliveryRecord.read(layout.stateFile(for: name))))
    }

    /// Sets a file's modification time to now: a rename keeps the old one, and `done/` is
    /// pruned and counted by when the event was delivered.
    static func touch(_ path: String) {
        _ = utimensat(AT_FDCWD, path, nil, 0)
    }
}
