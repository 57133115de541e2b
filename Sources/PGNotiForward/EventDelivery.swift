import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import PGNotiCore

#if canImport(Glibc)
    import Glibc
#endif

/// One event taken from the queue, as the consumer hands it to a delivery.
public struct PendingEvent: Sendable {
    /// The queue file name (`<micros>-<id>.json`).
    public let name: String
    public let id: String
    public let kind: String
    /// The file's exact bytes: what the receiver gets and what the signature covers.
    public let body: [UInt8]

    public init(name: String, id: String, kind: String, body: [UInt8]) {
        self.name = name
        self.id = id
        self.kind = kind
        self.body = body
    }
}

/// What one attempt came to.
public enum DeliveryOutcome: Sendable, Equatable {
    case delivered(detail: String)
    /// The receiver says the event will never be wanted (HTTP 410): no retries.
    case gone(detail: String)
    /// Anything else; tried again later.
    case failed(detail: String)
}

/// How an event reaches the merchant's app: an HTTP POST or a command.
public protocol EventDelivery: Sendable {
    func deliver(_ event: PendingEvent) async -> DeliveryOutcome
    func shutdown() async
}

/// Standard Webhooks over HTTP (www.standardwebhooks.com): the event's exact bytes, signed
/// afresh on every attempt, with the event id as `webhook-id` so the receiver can deduplicate.
public final class WebhookDelivery: EventDelivery {
    let url: String
    let secret: WebhookSecret
    let timeout: TimeAmount
    let connectTimeout: TimeAmount
    let client: HTTPClient
    let userAgent = "pgnoti/\(PGNotiVersion.current)"

    /// `timeout` bounds a whole attempt; `connectTimeout` how long opening a connection may
    /// take, refused connections being retried within it, so that a dead app fails an attempt
    /// after `connectTimeout` rather than holding it for the whole `timeout`.
    public init(url: String, secret: WebhookSecret, timeout: Duration, connectTimeout: Duration = .seconds(5)) {
        self.url = url
        self.secret = secret
        self.timeout = Self.amount(timeout)
        self.connectTimeout = Self.amount(min(connectTimeout, timeout))
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: self.connectTimeout, read: self.timeout))
        // A webhook is one small POST; a pooled connection the receiver closed must not turn
        // into a failed attempt.
        configuration.connectionPool = .init(idleTimeout: .seconds(30))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func deliver(_ event: PendingEvent) async -> DeliveryOutcome {
        let timestamp = Int64(Date().timeIntervalSince1970)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        request.headers.add(name: "User-Agent", value: userAgent)
        request.headers.add(name: "webhook-id", value: event.id)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        request.headers.add(
            name: "webhook-signature",
            value: StandardWebhooks.signature(secret: secret, id: event.id, timestamp: timestamp, body: event.body))
        request.body = .bytes(ByteBuffer(bytes: event.body))
        do {
            let response = try await client.execute(request, timeout: timeout)
            // Read (a little of) the answer so the connection can be reused; its content is not
            // part of the contract.
            let answer = try? await response.body.collect(upTo: 4096)
            let code = Int(response.status.code)
            let detail = "HTTP \(code)" + Self.snippet(answer)
            switch code {
            case 200..<300: return .delivered(detail: "HTTP \(code)")
            case 410: return .gone(detail: detail)
            default: return .failed(detail: detail)
            }
        } catch {
            return .failed(detail: Self.describe(error))
        }
    }

    public func shutdown() async {
        try? await client.shutdown()
    }

    static func amount(_ duration: Duration) -> TimeAmount {
        .nanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    /// The start of the receiver's answer, for `forward status`: one line, printable.
    static func snippet(_ buffer: ByteBuffer?) -> String {
        guard let buffer, buffer.readableBytes > 0 else { return "" }
        let text = String(decoding: buffer.readableBytesView.prefix(120), as: UTF8.self)
        let line = text.map { $0.isNewline || $0.asciiValue.map { $0 < 0x20 } == true ? " " : $0 }
        return ": " + String(line).trimmingCharacters(in: .whitespaces)
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout: return "timed out"
            case .remoteConnectionClosed: return "connection closed by the receiver"
            default: return "\(error)"
            }
        }
        let text = "\(error)"
        if text.contains("connectTimeout") || text.contains("deadlineExceeded") { return "timed out" }
        if text.contains("refused") || text.contains("ECONNREFUSED") { return "connection refused" }
        return text
    }
}

/// Runs a command per event: the event JSON on stdin, `PGNOTI_EVENT_ID` and
/// `PGNOTI_EVENT_KIND` in the environment. Exit status 0 means done.
public final class ExecDelivery: EventDelivery {
    let command: String
    let timeout: Duration

    public init(command: String, timeout: Duration) {
        self.command = command
        self.timeout = timeout
    }

    public func deliver(_ event: PendingEvent) async -> DeliveryOutcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        var environment = ProcessInfo.processInfo.environment
        environment["PGNOTI_EVENT_ID"] = event.id
        environment["PGNOTI_EVENT_KIND"] = event.kind
        environment["PGNOTI_EVENT_FILE"] = event.name
        process.environment = environment
        let stdin = Pipe()
        process.standardInput = stdin
        let exited = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { exited.continuation.yield($0.terminationStatus) }
        do {
            try process.run()
        } catch {
            return .failed(detail: "cannot run /bin/sh: \(error.localizedDescription)")
        }
        // The pipe buffer may be smaller than the event; write on a thread of its own.
        let body = event.body
        let writer = stdin.fileHandleForWriting
        Thread.detachNewThread {
            try? writer.write(contentsOf: body)
            try? writer.close()
        }
        let pid = process.processIdentifier
        enum Ending {
            case exited(Int32)
            case timedOut
        }
        let ending: Ending = await withTaskGroup(of: Ending?.self) { group in
            group.addTask {
                for await status in exited.stream { return .exited(status) }
                return nil
            }
            group.addTask { [timeout] in
                do { try await Task.sleep(for: timeout) } catch { return nil }
                kill(pid, SIGKILL)
                return .timedOut
            }
            var ending: Ending?
            while let next = await group.next() {
                guard let next else { continue }
                if ending == nil { ending = next }
                // Exited: stop the timer. Timed out: the exit of the killed command still comes,
                // and is waited for so no zombie is left.
                if case .exited = next {
                    group.cancelAll()
                    break
                }
            }
            return ending ?? .timedOut
        }
        switch ending {
        case .timedOut: return .failed(detail: "timed out after \(timeout); the command was killed")
        case .exited(let status):
            return status == 0 ? .delivered(detail: "exit 0") : .failed(detail: "exit status \(status)")
        }
    }

    public func shutdown() async {}
}
