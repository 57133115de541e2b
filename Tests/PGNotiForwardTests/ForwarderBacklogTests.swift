import Foundation
import Logging
import PGNotiCore
import Synchronization
import Testing

@testable import PGNotiForward

#if canImport(Glibc)
    import Glibc
#endif

/// A delivery that answers at once, recording the order it was asked in.
final class InstantDelivery: EventDelivery {
    let calls = Mutex<[String]>([])

    func deliver(_ event: PendingEvent) async -> DeliveryOutcome {
        calls.withLock { $0.append(event.id) }
        return .delivered(detail: "ok")
    }

    func shutdown() async {}
}

/// A delivery that holds every request until the gate opens.
final class GatedDelivery: EventDelivery {
    private struct State {
        var open = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())
    let started = Atomic<Int>(0)

    func deliver(_ event: PendingEvent) async -> DeliveryOutcome {
        started.add(1, ordering: .relaxed)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now: Bool = state.withLock { state in
                if state.open { return true }
                state.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
        return .delivered(detail: "ok")
    }

    func open() {
        let waiting: [CheckedContinuation<Void, Never>] = state.withLock { state in
            state.open = true
            defer { state.waiting.removeAll() }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    func shutdown() async { open() }
}

/// The forwarder works a backlog from its own index: one listing at start, inotify after that
/// (or a listing only when its index runs dry, without inotify), and the same guarantees.
@Suite struct ForwarderBacklogTests {
    /// Polls `condition` every 10 ms until it holds or `seconds` pass; true if it held.
    static func eventually(_ seconds: Double = 20, _ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while !condition() {
            if ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Files an event as the relay does: written beside `new/`, renamed in.
    static func file(_ id: String, order: String, _ sequence: Int, in layout: ForwardLayout) throws {
        let name = String(format: "%017d", sequence) + "-\(id).json"
        let temporary = layout.queue + "/.tmp-" + name
        try ForwarderTests.event(id, order: order).write(to: URL(fileURLWithPath: temporary))
        try ForwardLayout.move(temporary, layout.new + "/" + name)
    }

    /// Each order's events were asked for in filing order (`<order>-<n>` ids).
    static func inOrderPerLane(_ calls: [String]) -> Bool {
        var last: [Substring: Int] = [:]
        for id in calls {
            guard let dash = id.lastIndex(of: "-"), let n = Int(id[id.index(after: dash)...]) else { return false }
            let order = id[..<dash]
            if let previous = last[order], previous >= n { return false }
            last[order] = n
        }
        return true
    }

    @Test func aBacklogIsListedOnceNotPerDelivery() async throws {
        let layout = try ForwarderTests.makeQueue()
        // 1,500 events in 300 orders of five, filed order by order interleaved.
        for sequence in 0..<1500 {
            _ = try ForwarderTests.put(
                ForwarderTests.event("o\(sequence % 300)-\(sequence / 300)", order: "O\(sequence % 300)"), sequence,
                id: "o\(sequence % 300)-\(sequence / 300)", in: layout.new)
        }
        let delivery = InstantDelivery()
        var settings = ForwarderTests.settings()
        settings.claimLimit = 400  // claims go on from the index as deliveries make room
        let forwarder = Forwarder(layout: layout, delivery: delivery, settings: settings, logger: Logger(label: "test"))
        try await ForwarderTests.run(forwarder) { ForwarderTests.count(layout.done) == 1500 }
        #expect(ForwarderTests.count(layout.done) == 1500)
        let calls = delivery.calls.withLock { $0 }
        #expect(calls.count == 1500, "each event once")
        #expect(Self.inOrderPerLane(calls))
        // new/ and cur/ at start, and keep_done pruning: not one listing per delivery.
        #expect((forwarder.source as! DirectoryEventSource).listings.load(ordering: .relaxed) <= 5)
    }

    /// Events filed while it runs, and events `forward retry` brings back, are delivered
    /// without a listing: inotify tells the index. Without inotify, listings find them.
    @Test(arguments: [true, false])
    func eventsArrivingWhileRunningAreDeliveredInOrder(watch: Bool) async throws {
        let layout = try ForwarderTests.makeQueue()
        try layout.create()
        let delivery = InstantDelivery()
        var settings = ForwarderTests.settings()
        settings.watch = watch
        let forwarder = Forwarder(layout: layout, delivery: delivery, settings: settings, logger: Logger(label: "test"))
        let task = Task { try await forwarder.run() }
        defer { task.cancel() }
        for round in 0..<10 {
            for order in 0..<6 {
                try Self.file("o\(order)-\(round)", order: "O\(order)", round * 6 + order, in: layout)
            }
            try await Task.sleep(for: .milliseconds(15))
        }
        #expect(try await Self.eventually { ForwarderTests.count(layout.done) == 60 })

        // Given up earlier, brought back by `forward retry` while the forwarder runs.
        let name = try ForwarderTests.put(
            ForwarderTests.event("back-0", order: "B"), 100, id: "back-0", in: layout.failed)
        #expect(try ForwardRetry.retry(layout, ids: ["back-0"]).moved == [name])
        #expect(try await Self.eventually { ForwarderTests.count(layout.done) == 61 })
        task.cancel()
        try await task.value

        let calls = delivery.calls.withLock { $0 }
        #expect(calls.count == 61 && Set(calls).count == 61)
        #expect(Self.inOrderPerLane(calls))
        if watch {
            // With inotify: the two listings at start and the pruning, nothing more.
            #expect((forwarder.source as! DirectoryEventSource).listings.load(ordering: .relaxed) <= 4)
        }
    }

    /// `new/` replaced under a running forwarder (renamed away, made anew): it watches the new
    /// one, rather than waiting for its once-a-minute listing.
    @Test func aReplacedNewDirectoryIsWatchedAgain() async throws {
        let layout = try ForwarderTests.makeQueue()
        let delivery = InstantDelivery()
        let forwarder = Forwarder(
            layout: layout, delivery: delivery, settings: ForwarderTests.settings(), logger: Logger(label: "test"))
        let task = Task { try await forwarder.run() }
        defer { task.cancel() }
        try await Task.sleep(for: .milliseconds(50))
        try Self.file("first-0", order: "O1", 1, in: layout)
        #expect(try await Self.eventually(10) { ForwarderTests.count(layout.done) == 1 })

        try ForwardLayout.move(layout.new, layout.queue + "/new.old")
        try FileManager.default.createDirectory(atPath: layout.new, withIntermediateDirectories: false)
        try await Task.sleep(for: .milliseconds(100))
        try Self.file("second-0", order: "O2", 2, in: layout)
        try await Task.sleep(for: .milliseconds(100))
        try Self.file("third-0", order: "O3", 3, in: layout)
        #expect(try await Self.eventually(10) { ForwarderTests.count(layout.done) == 3 })
        task.cancel()
        try await task.value
        #expect(delivery.calls.withLock { $0 } == ["first-0", "second-0", "third-0"])
    }

    /// `in flight` is what is being sent right now, not everything claimed; whether a forwarder
    /// runs (and its pid) comes from the lock.
    @Test func statusCountsOnlyWhatIsBeingDelivered() async throws {
        let layout = try ForwarderTests.makeQueue()
        for sequence in 0..<6 {
            _ = try ForwarderTests.put(
                ForwarderTests.event("e\(sequence)", order: "O\(sequence)"), sequence, id: "e\(sequence)",
                in: layout.new)
        }
        try layout.create()
        let lock = try #require(try ConsumerLock.tryAcquire(layout))
        let delivery = GatedDelivery()
        var settings = ForwarderTests.settings()
        settings.concurrency = 2
        let forwarder = Forwarder(layout: layout, delivery: delivery, settings: settings, logger: Logger(label: "test"))
        let task = Task { try await forwarder.run() }
        defer { task.cancel() }

        #expect(try await Self.eventually { ForwardStatus.read(layout).inFlight == 2 })
        let busy = ForwardStatus.read(layout)
        #expect(busy.running && busy.pid == getpid())
        #expect(busy.inFlight == 2 && busy.pending == 4 && busy.pendingClaimed == 4 && busy.retrying.isEmpty)
        #expect(delivery.started.load(ordering: .relaxed) == 2)

        delivery.open()
        #expect(try await Self.eventually { ForwarderTests.count(layout.done) == 6 })
        #expect(try await Self.eventually { ForwardStatus.read(layout).inFlight == 0 })
        task.cancel()
        try await task.value
        withExtendedLifetime(lock) {}
    }

    /// Claimed events of a forwarder that is gone are pending, not in flight, whatever its
    /// `in-flight.json` last said.
    @Test func nothingIsInFlightWithoutAForwarder() throws {
        let layout = try ForwarderTests.makeQueue()
        try layout.create()
        let name = try ForwarderTests.put(ForwarderTests.event("left", order: "O1"), 1, id: "left", in: layout.cur)
        try InFlightRecord(pid: 999_999, files: [name]).write(to: layout.inFlightFile)
        let status = ForwardStatus.read(layout)
        #expect(!status.running && status.pid == nil)
        #expect(status.inFlight == 0 && status.pending == 1 && status.pendingClaimed == 1)

        // A record by another pid than the lock's holder is stale too.
        let lock = try #require(try ConsumerLock.tryAcquire(layout))
        let held = ForwardStatus.read(layout)
        #expect(held.running && held.pid == getpid() && held.inFlight == 0)
        withExtendedLifetime(lock) {}
    }

    /// A directory (or anything but a plain file) named `*.json` is no event: never counted,
    /// claimed or delivered.
    @Test func onlyRegularFilesAreEvents() async throws {
        let layout = try ForwarderTests.makeQueue()
        try layout.create()
        for directory in [layout.new, layout.cur] {
            try FileManager.default.createDirectory(
                atPath: directory + "/00000000000000000-dir.json", withIntermediateDirectories: false)
        }
        try FileManager.default.createSymbolicLink(
            atPath: layout.cur + "/00000000000000000-link.json", withDestinationPath: "/etc/hostname")
        #expect(ForwardStatus.read(layout).inFlight == 0 && ForwardStatus.read(layout).pending == 0)
        _ = try ForwarderTests.put(ForwarderTests.event("real", order: "O1"), 5, id: "real", in: layout.new)
        let delivery = InstantDelivery()
        let forwarder = Forwarder(
            layout: layout, delivery: delivery, settings: ForwarderTests.settings(), logger: Logger(label: "test"))
        try await ForwarderTests.run(forwarder) { ForwarderTests.count(layout.done) == 1 }
        #expect(delivery.calls.withLock { $0 } == ["real"])
        let status = ForwardStatus.read(layout)
        #expect(status.pending == 0 && status.inFlight == 0 && status.failed.isEmpty)
        var info = stat()
        #expect(lstat(layout.new + "/00000000000000000-dir.json", &info) == 0, "left where it was")
    }
}
