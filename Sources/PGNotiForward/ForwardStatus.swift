import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where the queue's events stand with the consumer, read from the directories, the consumer's
/// lock and its `in-flight.json`, so `pgnoti forward status` and the daemon's `/metrics` see the
/// same thing as the consumer.
public struct ForwardStatus: Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let record: DeliveryRecord?

        public init(name: String, record: DeliveryRecord?) {
            self.name = name
            self.record = record
        }
    }

    /// Waiting for a first attempt: in `new/`, or claimed into `cur/` and not tried yet.
    public var pending = 0
    /// Of `pending`, those already claimed into `forward/cur/`.
    public var pendingClaimed = 0
    /// Being delivered right now (what the running consumer says it is sending); 0 when no
    /// consumer runs.
    public var inFlight = 0
    /// Claimed and failed at least once: waiting for the next attempt.
    public var retrying: [Entry] = []
    public var failed: [Entry] = []
    public var deliveredLastHour = 0
    /// Whether a consumer holds the queue's lock, and its pid when that can be told.
    public var running = false
    public var pid: Int32?
    /// With a PostgreSQL database: the forwarder holding the lease (`host pid N …`).
    public var holder: String?

    public init() {}

    public static func read(_ layout: ForwardLayout, now: Date = Date()) -> ForwardStatus {
        var status = ForwardStatus()
        let holder = ConsumerLock.holder(layout)
        status.running = holder.running
        status.pid = holder.pid
        // A record left by a consumer that has gone, or by an earlier one, says nothing.
        var delivering: Set<String> = []
        if holder.running, let record = InFlightRecord.read(layout.inFlightFile),
            holder.pid == nil || holder.pid == record.pid
        {
            delivering = Set(record.files)
        }
        status.pending = ForwardLayout.names(in: layout.new).count
        for name in ForwardLayout.names(in: layout.cur) {
            if delivering.contains(name) {
                status.inFlight += 1
            } else if let record = DeliveryRecord.read(layout.stateFile(for: name)), record.attempts > 0 {
                status.retrying.append(Entry(name: name, record: record))
            } else {
                status.pending += 1
                status.pendingClaimed += 1
            }
        }
        status.failed = ForwardLayout.names(in: layout.failed).map {
            Entry(name: $0, record: DeliveryRecord.read(layout.stateFile(for: $0)))
        }
        let hourAgo = now.timeIntervalSince1970 - 3600
        for name in ForwardLayout.names(in: layout.done) {
            var info = stat()
            if stat(layout.done + "/" + name, &info) == 0, Double(info.st_mtim.tv_sec) >= hourAgo {
                status.deliveredLastHour += 1
            }
        }
        return status
    }
}

/// `pgnoti forward retry`: failed events back into `cur/`, with a fresh retry budget. The
/// running consumer takes them on at its next look (within a second).
public enum ForwardRetry {
    public struct Result: Sendable {
        public var moved: [String] = []
        public var notFound: [String] = []

        public init() {}
    }

    /// `ids` are event ids or queue file names.
    public static func retry(_ layout: ForwardLayout, ids: [String]) throws -> Result {
        try layout.create()
        var result = Result()
        let failed = ForwardLayout.names(in: layout.failed)
        for id in ids {
            let matches = failed.filter { Self.matches($0, id) }
            if matches.isEmpty { result.notFound.append(id) }
            for name in matches { try bringBack(name, layout) }
            result.moved += matches
        }
        return result
    }

    /// Whether `wanted`, as an operator typed it, names the event filed as `name`: its event id
    /// or its whole file name.
    public static func matches(_ name: String, _ wanted: String) -> Bool {
        name == wanted || ForwardLayout.eventID(fromFileName: name) == wanted
    }

    public static func retryAllFailed(_ layout: ForwardLayout) throws -> Result {
        try layout.create()
        var result = Result()
        for name in ForwardLayout.names(in: layout.failed) {
            try bringBack(name, layout)
            result.moved.append(name)
        }
        return result
    }

    private static func bringBack(_ name: String, _ layout: ForwardLayout) throws {
        // The record goes first: if the move then fails, the event is still in failed/ and a
        // second `retry` works; the other order could leave an old give-up record on a live event.
        unlink(layout.stateFile(for: name))
        try ForwardLayout.move(layout.failed + "/" + name, layout.cur + "/" + name)
    }
}
