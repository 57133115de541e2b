import Foundation

/// Where the forwarder finds its events and where it records what became of each: the queue
/// directory on one host (`DirectoryEventSource`), the database's outbox in a cluster (in
/// `PGNotiPostgres`). Everything else, the loop, delivery, signing, retries, per-order ordering
/// and the index, is the forwarder's, the same for both.
///
/// The forwarder calls a source from its one loop, one call at a time, except `waitForWork`,
/// which runs beside the loop while it waits.
public protocol EventSource: Sendable {
    /// Where the events are, for the log.
    var location: String { get }
    /// Before the loop: prepares what is needed and takes on what an earlier run left claimed.
    func start(_ index: inout ForwardIndex) async throws
    /// Brings the index up to date (what arrived, what `forward retry` brought back) and claims
    /// at most `room` more, oldest first. A source that lost the right to deliver empties it.
    func refresh(_ index: inout ForwardIndex, room: Int) async
    /// Whether a delivery may start now.
    func mayStartDelivery() -> Bool
    /// What to hand the delivery; nil when the event has gone (the forwarder forgets it).
    func pending(_ event: ForwardIndex.Claimed) async -> PendingEvent?
    func delivered(_ event: ForwardIndex.Claimed) async -> SourceWrite
    /// Saves the schedule of an event that will be tried again.
    func retryLater(_ event: ForwardIndex.Claimed, record: DeliveryRecord) async -> SourceWrite
    func giveUp(_ event: ForwardIndex.Claimed, record: DeliveryRecord) async -> SourceWrite
    /// Says which events are being delivered right now, for `forward status` and the gauges.
    /// False when that was left out of date for now (rate-limited): the loop comes back soon.
    func publish(inFlight: [String], force: Bool) async -> Bool
    /// Returns when work may have arrived, or after `timeout`.
    func waitForWork(upTo timeout: Duration) async
    /// Removes what was delivered more than `keepDone` ago.
    func pruneDelivered(olderThan keepDone: Duration) async
    /// After the last delivery has finished.
    func stop() async
}

/// What recording an outcome came to.
public enum SourceWrite: Sendable, Equatable {
    case recorded
    /// Not recorded (an I/O error): the event stays claimed and is tried again.
    case failed(String)
    /// This forwarder may no longer write for the event: another holds the lease now and
    /// delivers it. The forwarder forgets it.
    case notOurs
}
