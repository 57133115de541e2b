import Foundation
import PGNotiCore
import PGNotiServer

#if canImport(Glibc)
    import Glibc
#endif

/// One JSON line in the journal per operator action that changes state (release, redeliver,
/// purge, retention, drop, retry, toss import), under `SYSLOG_IDENTIFIER=pgnoti`, so
/// `journalctl -t pgnoti` shows who did what beside the daemon's own lines.
///
/// Written to journald's native socket as one datagram (`UnixDatagram`, as sd_notify is), with no
/// library. Without journald (a container, a developer's laptop) the line goes nowhere: the
/// command's own output already told the operator. `PGNOTI_JOURNAL_SOCKET` points tests at a
/// socket of their own.
enum OperatorLog {
    static var socketPath: String {
        ProcessInfo.processInfo.environment["PGNOTI_JOURNAL_SOCKET"] ?? "/run/systemd/journal/socket"
    }

    static func record(_ command: String, ids: [String] = [], outcome: String, details: [String: String] = [:]) {
        var json = JSONWriter()
        json.beginObject()
        json.member("command", command)
        for (key, value) in details.sorted(by: { $0.key < $1.key }) { json.member(key, value) }
        json.member("ids", strings: ids)
        json.member("msg", "operator action")
        json.member("outcome", outcome)
        json.member("pid", Int(getpid()))
        json.member("time", KoreanTime.iso8601(Date()))
        json.member("uid", Int(getuid()))
        json.endObject()
        let line = String(decoding: json.bytes, as: UTF8.self)
        send(fields: ["SYSLOG_IDENTIFIER": "pgnoti", "PRIORITY": "5", "MESSAGE": line])
    }

    /// journald's native protocol: `KEY=value\n` per field (no value here holds a newline).
    static func send(fields: [String: String]) {
        let payload = fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)\n" }.joined()
        UnixDatagram.send(Array(payload.utf8), to: socketPath)
    }
}
