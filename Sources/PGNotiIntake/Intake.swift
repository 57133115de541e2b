import Foundation
import Logging
import Metrics
import PGNotiCore
import PGNotiStore
import Synchronization

/// The single path every notification takes into the ledger, whichever door it came through:
/// decode → authenticate → verify → commit. It knows nothing about HTTP; the transport maps
/// a result to its answer, and only a committed result carries an ACK.
public final class Intake: Sendable {
    private let policyBox: Mutex<IntakePolicy>
    let store: any NotificationStore
    let logger: Logger
    private let onFiled: @Sendable () -> Void

    /// - Parameter onFiled: called after a commit that put an event in the outbox (wakes the relay).
    public init(
        policy: IntakePolicy, store: any NotificationStore, logger: Logger,
        onFiled: @escaping @Sendable () -> Void = {}
    ) {
        self.policyBox = Mutex(policy)
        self.store = store
        self.logger = logger
        self.onFiled = onFiled
    }

    public var policy: IntakePolicy { policyBox.withLock { $0 } }

    /// Swaps the policy (a reload); submissions already under way finish with the old one.
    public func replacePolicy(_ policy: IntakePolicy) {
        policyBox.withLock { $0 = policy }
    }

    /// What a door adds to the submission's log line once it knows the result (the HTTP
    /// status it answered, its latency, the masked path).
    public typealias Annotation = @Sendable (IntakeResult) -> Logger.Metadata

    /// Decodes, authenticates, verifies and commits one submission, and writes its one log
    /// line. A refusal is kept in quarantine unless `quarantine` is false (a release of an item
    /// that is already there).
    public func process(
        _ submission: Submission, quarantine: Bool = true, annotate: Annotation = { _ in [:] }
    ) async -> IntakeResult {
        let result: IntakeResult
        switch prepare(submission, quarantine: quarantine) {
        case .refuse(let rejection, let parsed, let keep):
            result = await refuse(submission, rejection, parsed: parsed, keep: keep)
        case .commit(let commit):
            let outcome: Result<RecordOutcome, any Error>
            do { outcome = .success(try await store.record(commit.entry)) } catch { outcome = .failure(error) }
            result = finish(commit, outcome, submission)
        }
        NotificationLog.emit(result, submission, logger: logger, extra: annotate(result))
        return result
    }

    /// Processes `submissions` as `process` does each, but commits those that pass in their
    /// order: each is deduplicated against the ones before it (of two versions of one
    /// notification, the first is the one stored), and their events are filed in that order.
    /// Refusals are kept in quarantine alongside. Results come back in the submissions' order.
    public func processInOrder(_ submissions: [Submission], annotate: Annotation = { _ in [:] }) async -> [IntakeResult]
    {
        var commits: [(index: Int, commit: Commit)] = []
        var refusals: [(index: Int, refusal: Refusal)] = []
        for (index, submission) in submissions.enumerated() {
            switch prepare(submission, quarantine: true) {
            case .commit(let commit): commits.append((index, commit))
            case .refuse(let rejection, let parsed, let keep):
                refusals.append((index, Refusal(rejection: rejection, parsed: parsed, keep: keep)))
            }
        }
        // All the entries are queued at once, in order, before any refusal is.
        async let recorded = store.recordInOrder(commits.map(\.commit.entry))
        var results = [IntakeResult?](repeating: nil, count: submissions.count)
        // Refusals only go to the quarantine, where order means nothing: a few at a time.
        await withTaskGroup(of: (Int, IntakeResult).self) { group in
            var pending = refusals.makeIterator()
            func next() {
                guard let (index, refusal) = pending.next() else { return }
                let submission = submissions[index]
                group.addTask {
                    let result = await self.refuse(
                        submission, refusal.rejection, parsed: refusal.parsed, keep: refusal.keep)
                    return (index, result)
                }
            }
            for _ in 0..<16 { next() }
            for await (index, result) in group {
                results[index] = result
                next()
            }
        }
        for ((index, commit), outcome) in zip(commits, await recorded) {
            results[index] = finish(commit, outcome, submissions[index])
        }
        let all = results.map { $0! }
        for (result, submission) in zip(all, submissions) {
            NotificationLog.emit(result, submission, logger: logger, extra: annotate(result))
        }
        return all
    }

    /// What one submission comes to before anything is stored.
    enum Prepared {
        case refuse(Rejection, parsed: (PaymentNotification, Fields)?, keep: Bool)
        case commit(Commit)
    }

    struct Refusal: Sendable {
        var rejection: Rejection
        var parsed: (PaymentNotification, Fields)?
        var keep: Bool
    }

    /// A submission that passed every check, ready for the ledger.
    struct Commit {
        var entry: LedgerEntry
        var ack: String
        var facts: IntakeResult.Facts
        var maskedFields: [(name: String, value: String)]?
    }

    /// Decode, authenticate, verify: everything short of the ledger, with no suspension, so a
    /// caller can queue several commits in an order of its choosing.
    func prepare(_ submission: Submission, quarantine: Bool) -> Prepared {
        let policy = self.policy
        guard let provider = policy.providers[submission.provider] else {
            // Not a refusal of what was sent but of where: nothing to keep.
            return .refuse(
                Rejection(.providerDisabled, "\(submission.provider.rawValue) is not enabled"), parsed: nil,
                keep: false)
        }
        let auth = policy.auth(for: provider.id)

        // Read the body first, whatever happens next: whether it reads as a notification decides
        // how long the quarantine keeps it if it is refused.
        let reading = Result { () throws(Rejection) in try Self.read(submission, with: provider) }
        let parsed = try? reading.get()

        if !auth.pathSecrets.isEmpty {
            let matches: Bool =
                switch submission.pathSecret {
                case .none: false
                case .presented(let bytes): auth.pathSecrets.matches(bytes)
                case .digest(let digest): auth.pathSecrets.matches(sha256: digest)
                }
            if !matches {
                let detail =
                    submission.pathSecret == .none
                    ? "the URL carries no path secret" : "the URL's path secret matches none configured"
                return .refuse(Rejection(.pathSecretMismatch, detail), parsed: parsed, keep: quarantine)
            }
        }
        if !auth.allowSources.isEmpty {
            let client = submission.address.client.flatMap(IPAddress.init)
            if client.map({ !auth.allowSources.contains($0) }) ?? true {
                let rejection = Rejection(
                    .sourceNotAllowed,
                    "client \(submission.address.client ?? "-") is not in \(provider.id.rawValue).allow_sources")
                return .refuse(rejection, parsed: parsed, keep: quarantine)
            }
        }

        let (notification, fields): (PaymentNotification, Fields)
        switch reading {
        case .success(let value): (notification, fields) = value
        case .failure(let rejection): return .refuse(rejection, parsed: nil, keep: quarantine)
        }
        if let merchants = auth.merchants, !merchants.contains(notification.merchantID) {
            let rejection = Rejection(
                .merchantNotAccepted,
                "MID \(notification.merchantID) is not in \(provider.id.rawValue).merchants")
            return .refuse(rejection, parsed: parsed, keep: quarantine)
        }
        let isTest = policy.isTestMerchant(notification.merchantID, provider: provider)
        // The sandbox authenticates no PG: it is safe only for merchants that move no money.
        // Toss files and Payup results come from the operator's own hand, not a public URL.
        if policy.sandbox && provider.id.postsNotifications && !isTest {
            let rejection = Rejection(
                .testMerchantOnly,
                "sandbox mode (no --config) takes only \(provider.id.rawValue)'s published test merchants and \(provider.id.rawValue).test_merchants; MID \(notification.merchantID) is neither"
            )
            return .refuse(rejection, parsed: parsed, keep: quarantine)
        }
        if isTest && !policy.sandbox && !auth.acceptTestMerchants {
            let rejection = Rejection(
                .testMerchant,
                "MID \(notification.merchantID) is a published test merchant; set \(provider.id.rawValue).accept_test_merchants = true to take it"
            )
            return .refuse(rejection, parsed: parsed, keep: quarantine)
        }
        var verified = notification
        do {
            verified.verifiedBy = try provider.verify(notification, fields)
        } catch {
            return .refuse(error, parsed: parsed, keep: quarantine)
        }
        return .commit(
            commit(
                verified, fields: fields, isTest: isTest || policy.sandbox, sandbox: policy.sandbox, submission,
                ack: provider.ackBody))
    }

    /// Refuses a submission the transport judged before the intake could (an oversized body,
    /// a rate limit), keeping it like any other refusal.
    public func refuse(_ submission: Submission, _ rejection: Rejection, annotate: Annotation = { _ in [:] }) async
        -> IntakeResult
    {
        let parsed = policy.providers[submission.provider].flatMap { try? Self.read(submission, with: $0) }
        let result = await refuse(submission, rejection, parsed: parsed, keep: true)
        NotificationLog.emit(result, submission, logger: logger, extra: annotate(result))
        return result
    }

    /// The body decoded as the provider reads its bodies (a form in the charset it declares or
    /// the provider's setting, a Toss row, a Payup result) and interpreted by it. Pure.
    static func read(_ submission: Submission, with provider: any PaymentProvider) throws(Rejection) -> (
        PaymentNotification, Fields
    ) {
        try read(submission.body, contentType: submission.contentType, with: provider)
    }

    static func read(_ body: [UInt8], contentType: String?, with provider: any PaymentProvider) throws(Rejection) -> (
        PaymentNotification, Fields
    ) {
        let fields = try provider.fields(from: body, contentType: contentType)
        return (try provider.interpret(fields), fields)
    }

    /// The event filed for a notification, as the daemon files it.
    static func event(
        _ notification: PaymentNotification, fields: Fields, receivedAt: Date, isTest: Bool, sandbox: Bool
    ) -> Event {
        var event = Event(
            notification: notification, receivedAt: receivedAt, isTest: isTest, charset: fields.charset,
            lossyFields: fields.lossyFieldNames)
        event.isSandbox = sandbox
        return event
    }

    /// `LedgerEntry.conflictEvent` for an event: its `notification.conflict` document, given the
    /// stored version it contradicts.
    static func conflictDocument(_ event: Event) -> @Sendable (String, Int?, String?) -> (String, [UInt8]) {
        { storedEventID, storedAmount, storedResult in
            let conflict = event.asConflict(
                with: storedEventID, storedAmount: storedAmount, storedResultCode: storedResult)
            return (conflict.id, conflict.jsonBytes())
        }
    }

    private func refuse(
        _ submission: Submission, _ rejection: Rejection, parsed: (PaymentNotification, Fields)?, keep: Bool
    ) async -> IntakeResult {
        var result = IntakeResult(.refused(rejection, .notAsked), facts: parsed.map { .init($0.0) })
        if logger.logLevel <= .debug, let fields = parsed?.1 { result.maskedFields = Masking.fields(fields.all) }
        Self.count(submission.provider, .rejected, reason: rejection.reason)
        guard keep else { return result }
        let entry = QuarantineEntry(
            provider: submission.provider.rawValue, reason: rejection.reason.rawValue, detail: rejection.detail,
            rawBody: submission.body, contentType: submission.contentType, forwardedFor: submission.forwardedFor,
            peer: submission.address.peer, client: submission.address.client,
            pathSecretSHA256: submission.pathSecret.sha256, parsed: parsed != nil,
            merchantID: parsed?.0.merchantID, tid: parsed?.0.tid, receivedAt: submission.receivedAt)
        do {
            switch try await store.quarantine(entry) {
            case .stored(let id): result.decision = .refused(rejection, .quarantined(id: id))
            case .dropped:
                result.decision = .refused(rejection, .lost("quarantine queue full: not kept"))
                IntakeMetrics.shared.quarantineDropped.increment()
            }
        } catch {
            result.decision = .refused(rejection, .lost("could not be kept: \(error)"))
        }
        return result
    }

    private func commit(
        _ notification: PaymentNotification, fields: Fields, isTest: Bool, sandbox: Bool, _ submission: Submission,
        ack: String
    ) -> Commit {
        let masked = logger.logLevel <= .debug ? Masking.fields(fields.all) : nil
        let event = Self.event(
            notification, fields: fields, receivedAt: submission.receivedAt, isTest: isTest, sandbox: sandbox)
        let entry = LedgerEntry(
            key: notification.key, fingerprint: notification.fingerprint, eventID: event.id,
            kind: notification.kind.rawValue, orderID: notification.orderID, amount: notification.amount,
            resultCode: notification.resultCode, rawBody: submission.body, contentType: submission.contentType,
            peer: submission.address.peer, client: submission.address.client, receivedAt: submission.receivedAt,
            eventJSON: { event.jsonBytes() },
            conflictEvent: Self.conflictDocument(event))
        return Commit(entry: entry, ack: ack, facts: .init(notification), maskedFields: masked)
    }

    /// What the ledger made of a prepared commit.
    private func finish(_ commit: Commit, _ recorded: Result<RecordOutcome, any Error>, _ submission: Submission)
        -> IntakeResult
    {
        var result = IntakeResult(.storeFailed(""), facts: commit.facts)
        result.maskedFields = commit.maskedFields
        let outcome: RecordOutcome
        switch recorded {
        case .success(let value): outcome = value
        case .failure(let error):
            // Nothing committed: no ACK.
            result.decision = .storeFailed("\(error)")
            Self.count(submission.provider, .error)
            return result
        }
        // Committed: from here on the PG may hear its ACK (`commit` holds it until now).
        let received = commit.entry.fingerprint
        switch outcome {
        case .accepted(let id, let fileName):
            result.decision = .committed(ack: commit.ack, .accepted(eventID: id, queueFile: fileName))
            onFiled()
        case .duplicate(let id):
            result.decision = .committed(ack: commit.ack, .duplicate(eventID: id))
        case .conflict(let id, let conflictsWith, let storedFingerprint, let fileName):
            result.decision = .committed(
                ack: commit.ack,
                .conflict(
                    .init(
                        storedFingerprint: storedFingerprint, receivedFingerprint: received,
                        conflictsWith: conflictsWith, filed: (id, fileName))))
            onFiled()
        case .conflictIgnored(let conflictsWith, let storedFingerprint, let ignored):
            result.decision = .committed(
                ack: commit.ack,
                .conflict(
                    .init(
                        storedFingerprint: storedFingerprint, receivedFingerprint: received,
                        conflictsWith: conflictsWith, filed: nil)))
            IntakeMetrics.shared.conflictsIgnored.increment()
            if ignored == 1 {
                logger.warning(
                    "conflict limit reached: further conflicting versions of this notification are counted, not filed",
                    metadata: [
                        "provider": "\(commit.entry.key.provider.rawValue)",
                        "merchant_id": "\(commit.entry.key.merchantID)", "tid": "\(commit.entry.key.tid)",
                        "state": "\(commit.entry.key.state)",
                        "limit": .stringConvertible(LedgerRules.maximumConflictsPerKey),
                    ])
            }
        }
        Self.count(submission.provider, result.outcome)
        return result
    }

    static func count(_ provider: ProviderID, _ outcome: IntakeResult.Outcome, reason: Rejection.Reason? = nil) {
        IntakeMetrics.shared.requests(provider, outcome).increment()
        if let reason { IntakeMetrics.shared.quarantined(reason).increment() }
        if outcome == .conflict { IntakeMetrics.shared.conflicts(provider).increment() }
    }
}
