/// Names of event files in `<queue>/new/`.
public enum QueueFileName {
    /// Longest accepted name, in bytes: NAME_MAX (255) minus room for the temporary suffix the
    /// spool adds while writing. The ledger's outbox enforces the same bound.
    public static let maximumLength = 200

    /// `<microseconds since epoch, 17 digits>-<event id>.json`, the time being when the event was
    /// filed: lexical order is filing order, so a consumer listing `new/` sees an approval before
    /// its cancel, and a notification released from quarantine after newer ones.
    public static func make(filedAtMicroseconds micros: Int64, eventID: String) -> String {
        let digits = String(max(0, micros))
        return String(repeating: "0", count: max(0, 17 - digits.count)) + digits + "-" + eventID + ".json"
    }

    /// True for a name the spool can file verbatim: no path separator, not `.`/`..`, not too long.
    public static func isPlain(_ name: String) -> Bool {
        !(name.isEmpty || name == "." || name == ".." || name.contains("/") || name.utf8.contains(0)
            || name.utf8.count > maximumLength)
    }
}
