/// The forwarder's own picture of its queue, kept in memory so that no delivery has to list a
/// directory: the names waiting in `new/` (in filing order), and the claimed events in `cur/`
/// by order lane, with which lane heads are due now and which wait for a retry.
///
/// Built once at start from a listing, then kept up to date by the forwarder itself (every
/// claim, delivery and give-up goes through it) and by inotify (files the relay renames into
/// `new/`, events `forward retry` brings back into `cur/`). Every operation is O(log n) in the
/// backlog; the files stay the truth, and a rescan can rebuild any part of this at any time.
public struct ForwardIndex: Sendable {
    /// One claimed event and where it stands.
    public struct Claimed: Sendable {
        /// The key, unique among claimed events; names sort in filing order.
        public let name: String
        public let id: String
        public let kind: String
        public let lane: String
        public var record: DeliveryRecord?

        public init(name: String, id: String, kind: String, lane: String, record: DeliveryRecord?) {
            self.name = name
            self.id = id
            self.kind = kind
            self.lane = lane
            self.record = record
        }

        var due: Double { record?.nextAttemptAt ?? 0 }
    }

    public init() {}

    public private(set) var claimed: [String: Claimed] = [:]
    /// Claimed names per lane, sorted: the first is the lane's head, the only one that may go out.
    private var lanes: [String: [String]] = [:]
    /// The event in flight in each lane that has one.
    private(set) var delivering: [String: String] = [:]
    /// Lane heads that were due when pushed, oldest name first. Entries are checked when taken
    /// (the head may have changed, or its lane become busy): stale ones are dropped.
    private var ready = Heap<String>()
    /// Lane heads waiting for their next attempt, soonest first; checked the same way.
    private var waiting = Heap<Timed>()
    /// Names believed to be in `new/`, not claimed yet, smallest (oldest) first.
    private var unclaimed = Heap<String>()
    private var unclaimedNames: Set<String> = []

    struct Timed: Comparable, Sendable {
        let at: Double
        let name: String
        static func < (a: Timed, b: Timed) -> Bool { (a.at, a.name) < (b.at, b.name) }
    }

    public var claimedCount: Int { claimed.count }
    /// The events being delivered right now.
    var inFlight: [String] { delivering.values.sorted() }
    var unclaimedCount: Int { unclaimedNames.count }

    // MARK: - new/

    /// A name seen in `new/` (a listing or inotify); known names are ignored.
    mutating func noteUnclaimed(_ name: String) {
        if unclaimedNames.insert(name).inserted { unclaimed.push(name) }
    }

    /// Replaces what is believed to be in `new/` with a fresh listing.
    mutating func replaceUnclaimed(with names: [String]) {
        unclaimedNames = Set(names)
        unclaimed = Heap(unclaimedNames)
    }

    /// The oldest name in `new/`, taken out of the index: the caller claims it (or finds it gone).
    mutating func takeUnclaimed() -> String? {
        guard let name = unclaimed.pop() else { return nil }
        unclaimedNames.remove(name)
        return name
    }

    // MARK: - cur/

    /// Takes on a claimed event; it goes out once it heads its lane and is due.
    public mutating func add(_ event: Claimed) {
        if let old = claimed[event.name] {
            remove(old.name)
        }
        claimed[event.name] = event
        var names = lanes[event.lane, default: []]
        // Names sort in filing order; a retried old event goes back to its place.
        names.insert(event.name, at: Self.insertionPoint(of: event.name, in: names))
        lanes[event.lane] = names
        schedule(lane: event.lane)
    }

    /// Forgets an event (delivered, given up, or gone from `cur/`), freeing its lane.
    public mutating func remove(_ name: String) {
        guard let event = claimed.removeValue(forKey: name) else { return }
        if var names = lanes[event.lane] {
            let index = Self.insertionPoint(of: name, in: names)
            if index > 0, names[index - 1] == name { names.remove(at: index - 1) }
            lanes[event.lane] = names.isEmpty ? nil : names
        }
        if delivering[event.lane] == name { delivering[event.lane] = nil }
        schedule(lane: event.lane)
    }

    /// Forgets every claimed event, those in flight included: their outcomes are then ignored.
    public mutating func removeAll() {
        self = ForwardIndex()
    }

    /// The oldest lane head that is due at `now` in a lane with nothing in flight; its lane
    /// is busy until `retryLater` or `remove`.
    mutating func start(now: Double) -> Claimed? {
        while let top = waiting.peek(), top.at <= now {
            waiting.removeTop()
            if isHead(top.name) { ready.push(top.name) }
        }
        while let name = ready.pop() {
            guard isHead(name), let event = claimed[name] else { continue }
            if event.due > now {
                waiting.push(Timed(at: event.due, name: name))
                continue
            }
            delivering[event.lane] = name
            return event
        }
        return nil
    }

    /// An attempt failed and will be made again: the new record says when.
    mutating func retryLater(_ name: String, record: DeliveryRecord) {
        guard var event = claimed[name] else { return }
        event.record = record
        claimed[name] = event
        if delivering[event.lane] == name { delivering[event.lane] = nil }
        schedule(lane: event.lane)
    }

    /// When the soonest waiting retry falls due (Unix seconds), if any.
    var nextRetryAt: Double? { waiting.peek()?.at }

    /// True when `name` heads its lane and the lane has nothing in flight.
    private func isHead(_ name: String) -> Bool {
        guard let event = claimed[name] else { return false }
        return delivering[event.lane] == nil && lanes[event.lane]?.first == name
    }

    private mutating func schedule(lane: String) {
        guard delivering[lane] == nil, let head = lanes[lane]?.first, let event = claimed[head] else { return }
        if event.due > 0 {
            waiting.push(Timed(at: event.due, name: head))
        } else {
            ready.push(head)
        }
    }

    /// Where `name` goes in the sorted `names` (after any equal one).
    private static func insertionPoint(of name: String, in names: [String]) -> Int {
        var low = 0
        var high = names.count
        while low < high {
            let middle = (low + high) / 2
            if names[middle] <= name { low = middle + 1 } else { high = middle }
        }
        return low
    }
}

/// A binary min-heap.
struct Heap<Element: Comparable & Sendable>: Sendable {
    private var items: [Element] = []

    init() {}

    init(_ elements: some Sequence<Element>) {
        items = Array(elements)
        if items.count > 1 {
            for index in stride(from: items.count / 2 - 1, through: 0, by: -1) { siftDown(index) }
        }
    }

    var count: Int { items.count }
    var isEmpty: Bool { items.isEmpty }
    func peek() -> Element? { items.first }

    mutating func push(_ element: Element) {
        items.append(element)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard let top = items.first else { return nil }
        removeTop()
        return top
    }

    mutating func removeTop() {
        guard !items.isEmpty else { return }
        items.swapAt(0, items.count - 1)
        items.removeLast()
        siftDown(0)
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count && items[left] < items[smallest] { smallest = left }
            if right < items.count && items[right] < items[smallest] { smallest = right }
            if smallest == parent { return }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
