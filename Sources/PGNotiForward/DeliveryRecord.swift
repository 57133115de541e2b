import Foundation

/// What the consumer remembers about an event that has failed at least once, in
/// `forward/state/<file name>`: enough to keep the backoff and the give-up deadline across a
/// restart, and for `forward status` to say what is wrong.
public struct DeliveryRecord: Codable, Sendable, Equatable {
    public var eventID: String
    public var attempts: Int
    /// Unix seconds of the first attempt; the give-up deadline counts from here.
    public var firstAttemptAt: Double
    public var nextAttemptAt: Double?
    public var lastError: String?
    public var lastAttemptAt: Double?

    enum CodingKeys: String, CodingKey {
        case eventID = "event_id"
        case attempts
        case firstAttemptAt = "first_attempt_at"
        case nextAttemptAt = "next_attempt_at"
        case lastError = "last_error"
        case lastAttemptAt = "last_attempt_at"
    }

    public init(
        eventID: String, attempts: Int, firstAttemptAt: Double, nextAttemptAt: Double? = nil,
        lastError: String? = nil, lastAttemptAt: Double? = nil
    ) {
        self.eventID = eventID
        self.attempts = attempts
        self.firstAttemptAt = firstAttemptAt
        self.nextAttemptAt = nextAttemptAt
        self.lastError = lastError
        self.lastAttemptAt = lastAttemptAt
    }

}

// Not fsynced: losing a delivery record in a power cut only restarts the backoff of an event
// that is still safely in `cur/`.
extension DeliveryRecord: JSONFileRecord {}

/// `forward/in-flight.json`: the queue files the running consumer is delivering right now,
/// rewritten by it as that changes (at most every 100 ms, and at once when it falls idle).
/// `forward status` believes it only while the consumer that wrote it still holds the lock.
public struct InFlightRecord: Codable, Sendable, Equatable {
    public var pid: Int32
    public var files: [String]

    public init(pid: Int32, files: [String]) {
        self.pid = pid
        self.files = files
    }

}

extension InFlightRecord: JSONFileRecord {}

/// A small JSON record the consumer keeps beside the queue (`forward/state/`, `in-flight.json`).
protocol JSONFileRecord: Codable {}

extension JSONFileRecord {
    /// nil when the file is missing or not a record.
    static func read(_ path: String) -> Self? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(Self.self, from: data)
    }

    /// Written to a temporary and renamed, so a reader never sees half a record.
    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(self)
        let temporary = path + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else {
            throw ForwardError("cannot write \(temporary)")
        }
        try ForwardLayout.move(temporary, path)
    }
}
