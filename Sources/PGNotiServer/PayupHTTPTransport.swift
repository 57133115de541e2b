import AsyncHTTPClient
import Foundation
import NIOCore
import NIOPosix
import PGNotiCore
import PGNotiIntake

#if canImport(Glibc)
    import Glibc
#endif

/// The Payup client's requests over HTTPS (async-http-client). Redirects are refused: a signed
/// payment request goes to the configured host or nowhere.
final class PayupHTTPTransport: PayupTransport {
    let client: HTTPClient

    init(connectTimeout: Duration = .seconds(10), readTimeout: Duration) {
        client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(
                redirectConfiguration: .disallow,
                timeout: .init(
                    connect: .nanoseconds(connectTimeout.nanoseconds), read: .nanoseconds(readTimeout.nanoseconds))))
    }

    func post(url: String, json: [UInt8], timeout: Duration) async -> PayupTransportResult {
        var outgoing = HTTPClientRequest(url: url)
        outgoing.method = .POST
        outgoing.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        outgoing.headers.add(name: "User-Agent", value: "pgnoti/\(PGNotiVersion.current)")
        outgoing.body = .bytes(ByteBuffer(bytes: json))
        do {
            let response = try await client.execute(outgoing, timeout: .nanoseconds(timeout.nanoseconds))
            let buffer = try await response.body.collect(upTo: 1024 * 1024)
            return .answered(status: Int(response.status.code), body: Array(buffer.readableBytesView))
        } catch {
            return .failed(Self.classify(error))
        }
    }

    func shutdown() async {
        try? await client.shutdown()
    }

    /// Judged by the error's type, never its text: only a connection that was never made is
    /// "never connected".
    static func classify(_ error: any Error) -> PayupFailure {
        if let error = error as? HTTPClientError {
            if error == .connectTimeout { return .neverConnected("connect timeout") }
            if error == .deadlineExceeded || error == .readTimeout { return .timedOut }
            return .lost("\(error)")
        }
        if error is NIOConnectionError { return .neverConnected("\(error)") }
        if let error = error as? IOError, [ECONNREFUSED, ENETUNREACH, EHOSTUNREACH].contains(error.errnoCode) {
            return .neverConnected("\(error)")
        }
        if case ChannelError.connectTimeout = error { return .neverConnected("connect timeout") }
        return .lost("\(error)")
    }
}
