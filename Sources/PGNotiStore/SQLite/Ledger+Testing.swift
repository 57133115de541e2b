import Foundation
import GRDB

// Hooks that let tests put the ledger into states that are otherwise only
// reachable by timing luck or by a broken disk. SPI rather than @testable so
// they keep compiling in release test builds.
extension Ledger {
    /// Parks the group-commit thread until the returned closure is called, so
    /// records submitted meanwhile are guaranteed to share one batch.
    @_spi(Testing) public func holdWriter() -> @Sendable () -> Void {
        writer.hold()
    }

    /// Records submitted but not yet taken into a batch.
    @_spi(Testing) public var queuedRecordCount: Int { writer.queuedRecordCount }

    /// Refused requests submitted but not yet taken into a batch.
    @_spi(Testing) public var queuedQuarantineCount: Int { writer.queuedQuarantineCount }

    /// Runs raw SQL on the writer connection (outside any transaction).
    @_spi(Testing) public func executeOnWriter(_ sql: String) async throws {
        try await pool.writeWithoutTransaction { db in try db.execute(sql: sql) }
    }

    /// Holds an open write transaction on this ledger's connection, the way
    /// another process writing to the same file would, until the returned
    /// closure is called. Returns once the lock is actually held.
    @_spi(Testing) public func holdWriteLock() async throws -> @Sendable () -> Void {
        let gate = DispatchSemaphore(value: 0)
        try await withCheckedThrowingContinuation { (acquired: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global().async { [pool] in
                var resumed = false
                do {
                    try pool.writeWithoutTransaction { db in
                        try db.inTransaction(.immediate) {
                            acquired.resume()
                            resumed = true
                            gate.wait()
                            return .rollback
                        }
                    }
                } catch {
                    if !resumed { acquired.resume(throwing: error) }
                }
            }
        }
        return { gate.signal() }
    }
}
