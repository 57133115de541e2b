import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix

/// The public listener's HTTP stack (same channel, guard and limits) with nothing behind it:
/// it reads the body and answers `OK`. It measures the ceiling the stack itself puts on
/// pgnoti, and exists only for `pgnoti-bench`; no configuration of the daemon can start it.
@_spi(Bench) public enum AckOnlyServer {
    public static func run(host: String, port: Int, maxBodyBytes: Int = 64 * 1024, logger: Logger) async throws {
        let connections = ConnectionRegistry(maximum: 4096, logger: logger)
        let responder = CallbackResponder<NotifyRequestContext> { request, _ in
            var length = 0
            for try await chunk in request.body { length += chunk.readableBytes }
            return PublicFront.text(length > 0 ? .ok : .badRequest, length > 0 ? "OK" : "empty body\n")
        }
        let app = Application(
            responder: responder,
            server: HTTPServerBuilder { responder in
                GuardedHTTPChannel(
                    responder: responder, connections: connections, readTimeout: .seconds(30),
                    maxBodyBytes: maxBodyBytes, maxHeaderBytes: 16 * 1024)
            },
            configuration: .init(address: .hostname(host, port: port), serverName: "pgnoti-ack-only", backlog: 1024),
            onServerRunning: { channel in
                logger.info("listening", metadata: ["port": .stringConvertible(channel.localAddress?.port ?? -1)])
            },
            eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup.singleton),
            logger: logger)
        try await app.runService()
    }
}
