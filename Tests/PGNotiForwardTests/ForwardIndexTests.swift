import Foundation
import Testing

@testable import PGNotiForward

/// The forwarder's in-memory index: the same order guarantees as the directories gave, without
/// listing them.
@Suite struct ForwardIndexTests {
    static func claimed(_ name: String, lane: String, due: Double? = nil) -> ForwardIndex.Claimed {
        ForwardIndex.Claimed(
            name: name, id: name, kind: "payment.approved", lane: lane,
            record: due.map { DeliveryRecord(eventID: name, attempts: 1, firstAttemptAt: 0, nextAttemptAt: $0) })
    }

    @Test func oneAtATimePerLaneOldestHeadFirst() {
        var index = ForwardIndex()
        index.add(Self.claimed("2-cancel", lane: "A"))
        index.add(Self.claimed("3-other", lane: "B"))
        index.add(Self.claimed("1-approve", lane: "A"))  // claimed late, still goes first
        #expect(index.start(now: 10)?.name == "1-approve")
        #expect(index.start(now: 10)?.name == "3-other")
        #expect(index.start(now: 10) == nil, "lane A is busy, B is empty")
        #expect(index.inFlight == ["1-approve", "3-other"])

        // The approval fails: its lane waits for the retry, the cancel behind it too.
        let retry = DeliveryRecord(eventID: "1-approve", attempts: 1, firstAttemptAt: 10, nextAttemptAt: 15)
        index.retryLater("1-approve", record: retry)
        index.remove("3-other")
        #expect(index.start(now: 12) == nil)
        #expect(index.nextRetryAt == 15)
        let again = index.start(now: 15)
        #expect(again?.name == "1-approve" && again?.record?.attempts == 1)
        index.remove("1-approve")
        #expect(index.start(now: 15)?.name == "2-cancel")
        index.remove("2-cancel")
        #expect(index.claimedCount == 0 && index.inFlight.isEmpty && index.start(now: 99) == nil)
    }

    /// `forward retry` brings back an event older than the lane's head: it goes first.
    @Test func aRetriedOlderEventGoesBackToItsPlace() {
        var index = ForwardIndex()
        index.add(Self.claimed("5-later", lane: "A"))
        index.add(Self.claimed("1-older", lane: "A"))
        #expect(index.start(now: 0)?.name == "1-older")
        #expect(index.start(now: 0) == nil)
    }

    /// Removing an event that is not the one in flight leaves the lane busy.
    @Test func removingAWaitingEventKeepsTheLaneBusy() {
        var index = ForwardIndex()
        index.add(Self.claimed("1", lane: "A"))
        index.add(Self.claimed("2", lane: "A"))
        index.add(Self.claimed("3", lane: "A"))
        #expect(index.start(now: 0)?.name == "1")
        index.remove("2")
        #expect(index.start(now: 0) == nil, "1 is still in flight")
        index.remove("1")
        #expect(index.start(now: 0)?.name == "3")
    }

    @Test func retriesComeDueInTime() {
        var index = ForwardIndex()
        index.add(Self.claimed("1", lane: "A", due: 30))
        index.add(Self.claimed("2", lane: "B", due: 20))
        index.add(Self.claimed("3", lane: "C"))
        #expect(index.nextRetryAt == 20)
        #expect(index.start(now: 0)?.name == "3")
        #expect(index.start(now: 0) == nil)
        #expect(index.start(now: 25)?.name == "2")
        #expect(index.start(now: 25) == nil)
        #expect(index.start(now: 30)?.name == "1")
    }

    @Test func unclaimedNamesComeOutInFilingOrderOnce() {
        var index = ForwardIndex()
        index.replaceUnclaimed(with: ["003", "001", "002"])
        index.noteUnclaimed("005")
        index.noteUnclaimed("004")
        index.noteUnclaimed("002")  // a listing and inotify both saw it
        #expect(index.unclaimedCount == 5)
        var taken: [String] = []
        while let name = index.takeUnclaimed() { taken.append(name) }
        #expect(taken == ["001", "002", "003", "004", "005"])
        index.noteUnclaimed("001")
        index.replaceUnclaimed(with: ["009"])
        #expect(index.takeUnclaimed() == "009" && index.takeUnclaimed() == nil, "a listing replaces the old belief")
    }

    /// Many lanes, events arriving in any order, random failures: every lane's events start in
    /// name order, never two of one lane at once.
    @Test func randomWorkKeepsEveryLanesOrder() {
        var generator = SystemRandomNumberGenerator()
        var index = ForwardIndex()
        var names = (0..<2000).map { String(format: "%06d", $0) }
        names.shuffle(using: &generator)
        for name in names { index.add(Self.claimed(name, lane: "L\(Int(name)! % 37)")) }
        var started: [String: [String]] = [:]
        var inFlight: [String] = []
        var now = 0.0
        var finished = 0
        while finished < 2000 {
            while inFlight.count < 4, let event = index.start(now: now) {
                #expect(!inFlight.contains { Int($0)! % 37 == Int(event.name)! % 37 }, "one per lane")
                inFlight.append(event.name)
                started[event.lane, default: []].append(event.name)
            }
            now += 1
            guard !inFlight.isEmpty else { continue }
            let name = inFlight.remove(at: Int.random(in: 0..<inFlight.count, using: &generator))
            if Int.random(in: 0..<5, using: &generator) == 0 {
                index.retryLater(
                    name, record: DeliveryRecord(eventID: name, attempts: 1, firstAttemptAt: 0, nextAttemptAt: now + 3))
            } else {
                index.remove(name)
                finished += 1
            }
        }
        for (_, names) in started {
            var distinct: [String] = []
            for name in names where distinct.last != name { distinct.append(name) }
            #expect(distinct == distinct.sorted(), "a lane's events in filing order")
        }
        #expect(index.claimedCount == 0)
    }

    @Test func heapPopsInOrder() {
        var generator = SystemRandomNumberGenerator()
        let values = (0..<500).map { _ in Int.random(in: 0..<100, using: &generator) }
        var heap = Heap(values.prefix(250))
        for value in values.dropFirst(250) { heap.push(value) }
        var out: [Int] = []
        while let value = heap.pop() { out.append(value) }
        #expect(out == values.sorted())
    }
}
