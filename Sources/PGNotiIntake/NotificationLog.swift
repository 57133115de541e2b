import Logging
import PGNotiCore

/// The one line per notification that operators alert on, the same whichever door the
/// notification came through. The intake writes it; the door adds what only it knows (HTTP
/// status, latency) through its annotation.
enum NotificationLog {
    static func emit(
        _ result: IntakeResult, _ submission: Submission, logger: Logger, extra: Logger.Metadata = [:]
    ) {
        var metadata = extra
        metadata["request_id"] = .string(submission.requestID)
        metadata["provider"] = .string(submission.provider.rawValue)
        metadata["outcome"] = .string(result.outcome.rawValue)
        metadata["peer"] = .string(submission.address.peer ?? "-")
        metadata["client"] = .string(submission.address.client ?? "-")
        switch submission.origin {
        case .http: break
        case .release(let id):
            metadata["origin"] = "release"
            metadata["quarantine_id"] = .stringConvertible(id)
        case .file(let name, let line):
            metadata["origin"] = "file"
            metadata["file"] = .string(name)
            metadata["line"] = .stringConvertible(line)
        case .payup(let intent):
            metadata["origin"] = "payup"
            metadata["intent_id"] = .string(intent)
        }
        if let v = result.merchantID { metadata["merchant_id"] = .string(v) }
        if let v = result.tid { metadata["tid"] = .string(v) }
        if let v = result.state { metadata["state"] = .string(v) }
        if let v = result.kind { metadata["kind"] = .string(v) }
        if let v = result.eventID { metadata["event_id"] = .string(v) }
        if let v = result.rejection {
            metadata["reason"] = .string(v.reason.rawValue)
            metadata["detail"] = .string(v.detail)
        }
        if let v = result.quarantineID { metadata["quarantine_id"] = .stringConvertible(v) }
        if let v = result.error { metadata["error"] = .string(v) }
        if case .committed(_, .conflict(let conflict)) = result.decision {
            metadata["stored"] = .string(conflict.storedFingerprint)
            metadata["received"] = .string(conflict.receivedFingerprint)
            metadata["conflicts_with"] = .string(conflict.conflictsWith)
            metadata["conflict_filed"] = .stringConvertible(conflict.filed != nil)
        }
        if let fields = result.maskedFields {
            metadata["fields"] = .dictionary(
                Dictionary(
                    fields.map { ($0.name, Logger.MetadataValue.string($0.value)) }, uniquingKeysWith: { a, _ in a }))
        }
        switch result.outcome {
        case .accepted, .duplicate: logger.info("notification", metadata: metadata)
        case .conflict, .rejected: logger.warning("notification", metadata: metadata)
        case .error: logger.error("notification", metadata: metadata)
        }
    }
}
