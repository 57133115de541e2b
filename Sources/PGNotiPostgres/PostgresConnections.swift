import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The writer's session and the readers' (`database_pool_size` in all), kept open by themselves: the daemon starts before the
/// database may be reachable, and keeps running while it restarts or fails over. Until both
/// sessions are up (and the schema migrated), every use fails at once with `Unavailable`, which
/// the intake answers with a 500: the PG retries, nothing is ACKed.
final class PostgresConnections: Sendable {
    struct Unavailable: Error, CustomStringConvertible {
        var reason: String
        var description: String { "PostgreSQL unreachable: \(reason)" }
    }

    private enum State {
        case connecting(lastError: String?)
        case ready(writer: PostgresConnection, readers: [PostgresConnection])
        case closed
    }

    let session: PostgresSession
    let logger: Logger
    private let state = Mutex(State.connecting(lastError: "not connected yet"))
    private let keeper = Mutex<Task<Void, Never>?>(nil)
    private let ready = Mutex<[CheckedContinuation<Void, Never>]>([])
    /// How often a lost session is tried again.
    let retryEvery: Duration
    /// False for the commands that only look: they check the schema and never migrate it.
    let migrates: Bool
    /// Sessions in all: the writer and `poolSize - 1` readers.
    let poolSize: Int
    private let next = Atomic<Int>(0)

    init(
        session: PostgresSession, logger: Logger, migrates: Bool = true, poolSize: Int = 4,
        retryEvery: Duration = .milliseconds(500)
    ) {
        self.session = session
        self.logger = logger
        self.migrates = migrates
        self.poolSize = poolSize
        self.retryEvery = retryEvery
    }

    /// Starts keeping the sessions open, in the background.
    func start() {
        let task = Task { [self] in await keep() }
        keeper.withLock { $0 = task }
    }

    /// Connects (and migrates) now, failing with the reason: for commands, which have no time
    /// to wait for a database that is down.
    func connectOnce() async throws {
        try await connect()
    }

    var writer: PostgresConnection {
        get throws { try open { writer, _ in writer } }
    }

    /// The readers in turn, so that operator queries and probes run side by side.
    var reader: PostgresConnection {
        get throws {
            try open { _, readers in readers[next.add(1, ordering: .relaxed).oldValue % readers.count] }
        }
    }

    /// The session `pick` chooses while the sessions are up, or why they cannot be used.
    private func open(
        _ pick: (_ writer: PostgresConnection, _ readers: [PostgresConnection]) -> PostgresConnection
    ) throws -> PostgresConnection {
        switch state.withLock({ $0 }) {
        case .ready(let writer, let readers):
            let session = pick(writer, readers)
            guard !session.isClosed else { throw Unavailable(reason: "the session was lost; reconnecting") }
            return session
        case .connecting(let error): throw Unavailable(reason: error ?? "connecting")
        case .closed: throw Unavailable(reason: "the ledger is closed")
        }
    }

    /// Why the database cannot be used now; nil while both sessions are up.
    var problem: String? {
        switch state.withLock({ $0 }) {
        case .ready(let writer, let readers):
            writer.isClosed || readers.contains(where: \.isClosed) ? "the session was lost" : nil
        case .connecting(let error): error ?? "connecting"
        case .closed: "closed"
        }
    }

    /// Returns once both sessions are up (at once if they are).
    func waitUntilReady() async {
        await withCheckedContinuation { continuation in
            let now: Bool = state.withLock { state in
                if case .ready = state { return true }
                ready.withLock { $0.append(continuation) }
                return false
            }
            if now { continuation.resume() }
        }
    }

    func close() async {
        keeper.withLock { $0?.cancel() }
        let old = state.withLock { state in
            defer { state = .closed }
            return state
        }
        if case .ready(let writer, let readers) = old {
            for reader in readers { try? await reader.close() }
            try? await writer.close()
        }
        for waiter in ready.withLock({ list in
            defer { list = [] }
            return list
        }) { waiter.resume() }
    }

    private func keep() async {
        while !Task.isCancelled {
            switch state.withLock({ $0 }) {
            case .closed:
                return
            case .ready(let writer, let readers):
                if writer.isClosed || readers.contains(where: \.isClosed) {
                    logger.error("PostgreSQL session lost; reconnecting")
                    try? await writer.close()
                    for reader in readers { try? await reader.close() }
                    state.withLock { if case .ready = $0 { $0 = .connecting(lastError: "the session was lost") } }
                    continue
                }
            case .connecting:
                do {
                    try await connect()
                } catch {
                    let reason = PostgresFailure.describe(error)
                    let changed: Bool = state.withLock { state in
                        guard case .connecting(let last) = state else { return false }
                        state = .connecting(lastError: reason)
                        return last != reason
                    }
                    if changed { logger.error("PostgreSQL unreachable", metadata: ["error": "\(reason)"]) }
                }
            }
            try? await Task.sleep(for: retryEvery)
        }
    }

    private func connect() async throws {
        let writer = try await session.connect(id: 1, logger: logger)
        do {
            if migrates {
                try await PostgresSchema.migrate(writer, logger: logger)
            } else {
                try await PostgresSchema.checkUsable(writer, database: session.url.database, logger: logger)
            }
            var readers: [PostgresConnection] = []
            do {
                for id in 2...max(2, poolSize) { readers.append(try await session.connect(id: id, logger: logger)) }
            } catch {
                for reader in readers { try? await reader.close() }
                throw error
            }
            let installed: Bool = state.withLock { state in
                guard case .connecting = state else { return false }
                state = .ready(writer: writer, readers: readers)
                return true
            }
            guard installed else {
                for reader in readers { try? await reader.close() }
                try? await writer.close()
                return
            }
            logger.notice("PostgreSQL connected", metadata: ["database": "\(session.url.redacted)"])
            for waiter in ready.withLock({ list in
                defer { list = [] }
                return list
            }) { waiter.resume() }
        } catch {
            try? await writer.close()
            throw error
        }
    }
}

/// Errors in words an operator can act on, without the query or its values (they may hold
/// personal data): postgres-nio's own description hides everything on purpose.
public enum PostgresFailure {
    public static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                let code = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                return message + code
            }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        if let error = error as? PostgresTransactionError {
            if let commit = error.commitError { return "COMMIT failed: " + describe(commit) }
            if let closure = error.closureError { return describe(closure) }
            if let begin = error.beginError { return "BEGIN failed: " + describe(begin) }
        }
        return "\(error)"
    }
}
