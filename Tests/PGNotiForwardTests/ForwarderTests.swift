import Foundation
import Logging
import PGNotiCore
import Synchronization
import Testing

@testable import PGNotiForward

@Suite struct RetryScheduleTests {
    let schedule = RetrySchedule(initial: .seconds(5), maximum: .seconds(4 * 3600), giveUpAfter: .seconds(72 * 3600))

    @Test func secondsThenMinutesThenHoursCapped() {
        let delays = (1...10).map { schedule.delay(afterFailures: $0, jitter: 0).seconds }
        #expect(delays[0] == 5 && delays[1] == 15 && delays[2] == 45)
        #expect(delays[4] > 60 && delays[6] > 3600, "minutes, then hours")
        #expect(abs((delays.last ?? 0) - 4 * 3600) < 0.01, "capped")
        #expect(zip(delays, delays.dropFirst()).allSatisfy { $0 <= $1 })
    }

    @Test func jitterStaysWithinTwentyPercent() {
        #expect(schedule.delay(afterFailures: 2, jitter: -1).seconds == 12)
        #expect(schedule.delay(afterFailures: 2, jitter: 1).seconds == 18)
        #expect(schedule.delay(afterFailures: 2, jitter: 7).seconds == 18, "clamped")
    }

    @Test func givesUpAfterTheBudget() {
        #expect(!schedule.isExhausted(firstAttemptAt: 0, now: 72 * 3600 - 1))
        #expect(schedule.isExhausted(firstAttemptAt: 0, now: 72 * 3600))
    }
}

@Suite struct EventFactsTests {
    @Test func lanesFollowTheOrderElseTheTransaction() throws {
        let byOrder = try #require(
            EventFacts(
                json: Data(
                    #"{"id":"e1","kind":"payment.approved","provider":"smartro","merchant_id":"M","order_id":"O1","tid":"T1"}"#
                        .utf8)))
        let cancel = try #require(
            EventFacts(
                json: Data(
                    #"{"id":"e2","kind":"payment.canceled","provider":"smartro","merchant_id":"M","order_id":"O1","tid":"T9"}"#
                        .utf8)))
        let noOrder = try #require(
            EventFacts(
                json: Data(
                    #"{"id":"e3","kind":"payment.approved","provider":"innopay","merchant_id":"M","order_id":null,"tid":"T1"}"#
                        .utf8)))
        #expect(byOrder.lane == cancel.lane)
        #expect(noOrder.lane != byOrder.lane && noOrder.lane.hasSuffix("tid:T1"))
        #expect(EventFacts(json: Data("not json".utf8)) == nil)
        #expect(EventFacts(json: Data(#"{"kind":"x"}"#.utf8)) == nil, "an event has an id")
    }
}

/// A delivery that answers from a script and records what it was asked, in order.
final class ScriptedDelivery: EventDelivery {
    let answers: Mutex<[String: [DeliveryOutcome]]>
    let calls = Mutex<[(id: String, at: ContinuousClock.Instant)]>([])

    init(_ answers: [String: [DeliveryOutcome]]) {
        self.answers = Mutex(answers)
    }

    func deliver(_ event: PendingEvent) async -> DeliveryOutcome {
        calls.withLock { $0.append((event.id, .now)) }
        try? await Task.sleep(for: .milliseconds(5))
        return answers.withLock { answers in
            guard var queue = answers[event.id], !queue.isEmpty else { return .delivered(detail: "ok") }
            let next = queue.removeFirst()
            answers[event.id] = queue
            return next
        }
    }

    func shutdown() async {}
}

@Suite struct ForwarderTests {
    static func makeQueue() throws -> ForwardLayout {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pgnoti-fwd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("new"), withIntermediateDirectories: true)
        return ForwardLayout(queue: root.path)
    }

    static func event(_ id: String, order: String?, tid: String = "T") -> Data {
        let order = order.map { "\"\($0)\"" } ?? "null"
        return Data(
            #"{"id":"\#(id)","kind":"payment.approved","provider":"smartro","merchant_id":"M","order_id":\#(order),"tid":"\#(tid)"}"#
                .utf8)
    }

    static func put(_ data: Data, _ sequence: Int, id: String, in directory: String) throws -> String {
        let name = String(format: "%017d", sequence) + "-\(id).json"
        try data.write(to: URL(fileURLWithPath: directory + "/" + name))
        return name
    }

    static func settings(giveUp: Duration = .seconds(3600)) -> ForwardSettings {
        ForwardSettings(
            concurrency: 4, retry: RetrySchedule(initial: .milliseconds(20), giveUpAfter: giveUp),
            scanInterval: .milliseconds(20))
    }

    /// Runs the forwarder until `done` holds (or 10 s pass), then stops it.
    static func run(_ forwarder: Forwarder, until done: @escaping @Sendable () -> Bool) async throws {
        let task = Task { try await forwarder.run() }
        let deadline = ContinuousClock.now + .seconds(10)
        while !done() && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        task.cancel()
        try await task.value
    }

    static func count(_ directory: String) -> Int { ForwardLayout.names(in: directory).count }

    @Test func aLaterEventOfTheSameOrderWaitsForTheEarlierOne() async throws {
        let layout = try Self.makeQueue()
        _ = try Self.put(Self.event("approve", order: "O1"), 1, id: "approve", in: layout.new)
        _ = try Self.put(Self.event("cancel", order: "O1"), 2, id: "cancel", in: layout.new)
        _ = try Self.put(Self.event("other", order: "O2"), 3, id: "other", in: layout.new)
        let delivery = ScriptedDelivery(["approve": [.failed(detail: "HTTP 500"), .failed(detail: "HTTP 500")]])
        let forwarder = Forwarder(
            layout: layout, delivery: delivery, settings: Self.settings(), logger: Logger(label: "test"))
        try await Self.run(forwarder) { Self.count(layout.done) == 3 }
        let calls = delivery.calls.withLock { $0.map(\.id) }
        #expect(calls.filter { $0 == "approve" }.count == 3)
        #expect(
            calls.firstIndex(of: "cancel")! > calls.lastIndex(of: "approve")!, "cancel after the approval went through")
        #expect(calls.firstIndex(of: "other")! < calls.lastIndex(of: "approve")!, "the other order did not wait")
        #expect(Self.count(layout.cur) == 0 && Self.count(layout.new) == 0)
        #expect(ForwardLayout.names(in: layout.state).isEmpty, "no retry records left once delivered")
    }

    @Test func goneAndExhaustedGoToFailedWithTheirReason() async throws {
        let layout = try Self.makeQueue()
        _ = try Self.put(Self.event("gone", order: "O1"), 1, id: "gone", in: layout.new)
        _ = try Self.put(Self.event("down", order: "O2"), 2, id: "down", in: layout.new)
        let delivery = ScriptedDelivery([
            "gone": [.gone(detail: "HTTP 410")],
            "down": Array(repeating: .failed(detail: "connection refused"), count: 1000),
        ])
        // Long enough that a busy test host finishes the first attempt and makes the 20 ms retry
        // before giving up: the clock starts when the first attempt starts, and is read when it
        // ends, so a first attempt slower than this would give up at once. (One second was not,
        // with two builds running beside the suite.)
        let forwarder = Forwarder(
            layout: layout, delivery: delivery, settings: Self.settings(giveUp: .seconds(3)),
            logger: Logger(label: "test"))
        try await Self.run(forwarder) { Self.count(layout.failed) == 2 }
        let status = ForwardStatus.read(layout)
        #expect(status.failed.count == 2 && status.inFlight == 0 && status.retrying.isEmpty)
        let gone = try #require(status.failed.first { $0.name.hasSuffix("-gone.json") })
        #expect(gone.record?.attempts == 1 && gone.record?.lastError == "HTTP 410")
        let down = try #require(status.failed.first { $0.name.hasSuffix("-down.json") })
        #expect((down.record?.attempts ?? 0) >= 2 && down.record?.lastError == "connection refused")

        // `forward retry` puts them back; a forwarder now delivers both.
        let moved = try ForwardRetry.retryAllFailed(layout)
        #expect(moved.moved.count == 2 && Self.count(layout.failed) == 0)
        let healthy = Forwarder(
            layout: layout, delivery: ScriptedDelivery([:]), settings: Self.settings(), logger: Logger(label: "test"))
        try await Self.run(healthy) { Self.count(layout.done) == 2 }
        #expect(Self.count(layout.done) == 2)
    }

    /// What a crash leaves in cur/, with its retry record, is taken up again at start.
    @Test func eventsLeftInCurAreResumedWithTheirRecord() async throws {
        let layout = try Self.makeQueue()
        try layout.create()
        let name = try Self.put(Self.event("left", order: "O1"), 1, id: "left", in: layout.cur)
        let record = DeliveryRecord(
            eventID: "left", attempts: 3, firstAttemptAt: Date().timeIntervalSince1970 - 10,
            nextAttemptAt: Date().timeIntervalSince1970 - 1, lastError: "HTTP 502")
        try record.write(to: layout.stateFile(for: name))
        #expect(ForwardStatus.read(layout).retrying.first?.record?.attempts == 3)
        let delivery = ScriptedDelivery(["left": [.failed(detail: "HTTP 503")]])
        let forwarder = Forwarder(
            layout: layout, delivery: delivery, settings: Self.settings(), logger: Logger(label: "test"))
        try await Self.run(forwarder) { Self.count(layout.done) == 1 }
        #expect(delivery.calls.withLock { $0.count } == 2)
    }
}
