import HTTPTypes
import Logging
import NIOCore
import NIOHTTPTypes

/// Per connection, between the HTTP codec and Hummingbird: the limits a hostile client must
/// not get around.
///
/// - **Connection cap.** Over `max_connections`, a connection is closed as soon as it is
///   accepted, before a byte is read; the accept loop never spins on a full file table.
/// - **Read deadline.** From the moment a connection may send a request until that request's
///   last body byte, at most `read_timeout_seconds`. A client trickling its header one byte at
///   a time is cut. A request that is fully read and waiting for its commit is never cut.
/// - **Oversized bodies.** A `Content-Length` over the limit is answered (413, by the
///   responder) and the connection closed, without reading the body: the guard stops asking
///   the socket for more and drops what the codec already has.
/// - **`Expect: 100-continue`.** Answered with `100 Continue`, unless the body is too large.
/// - **Shutdown.** When the server quiesces, a connection still reading a request is cut
///   (the PG never got an ACK and will retry); one waiting for its commit finishes.
final class RequestGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    enum Phase {
        /// Between requests, or before the first: the deadline runs.
        case awaitingRequest
        /// Head read, body not finished: the deadline runs.
        case readingBody
        /// The whole request is in; the responder is working on it.
        case responding
    }

    private let connections: ConnectionRegistry
    private let readTimeout: TimeAmount
    private let maxBodyBytes: Int
    private var phase = Phase.awaitingRequest
    private var deadline: Scheduled<Void>?
    private var registered = false
    private var discardingBody = false
    private var closeAfterResponse = false
    private var quiescing = false

    init(connections: ConnectionRegistry, readTimeout: TimeAmount, maxBodyBytes: Int) {
        self.connections = connections
        self.readTimeout = readTimeout
        self.maxBodyBytes = maxBodyBytes
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { activate(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        activate(context)
        context.fireChannelActive()
    }

    private func activate(_ context: ChannelHandlerContext) {
        guard !registered else { return }
        registered = true
        guard connections.open(context.channel) else {
            context.close(promise: nil)
            return
        }
        armDeadline(context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        if registered { connections.closed(context.channel) }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    private func armDeadline(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: readTimeout) {
            let (handler, context) = loopBound.value
            handler.deadline = nil
            guard handler.phase != .responding else { return }
            handler.connections.readTimedOut()
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let request):
            phase = .readingBody
            let declared = request.headerFields[.contentLength].flatMap { Int($0) }
            if let declared, declared > maxBodyBytes {
                discardingBody = true
                closeAfterResponse = true
            } else if request.headerFields[.expect]?.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
            }
            context.fireChannelRead(data)
        case .body:
            if !discardingBody { context.fireChannelRead(data) }
        case .end:
            phase = .responding
            deadline?.cancel()
            deadline = nil
            if !discardingBody { context.fireChannelRead(data) }
        }
    }

    /// While a body is being thrown away, the socket is not read at all.
    func read(context: ChannelHandlerContext) {
        if !discardingBody { context.read() }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        switch part {
        case .head(let response):
            if response.headerFields[.connection]?.lowercased() == "close" { closeAfterResponse = true }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            if closeAfterResponse || quiescing {
                context.writeAndFlush(data, promise: promise)
                context.close(promise: nil)
                return
            }
            context.write(data, promise: promise)
            phase = .awaitingRequest
            discardingBody = false
            armDeadline(context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            quiescing = true
            // Not yet fully read: the PG has no ACK and will retry; waiting would let one slow
            // client hold up the shutdown past systemd's patience.
            if phase != .responding {
                context.close(promise: nil)
                return
            }
        }
        context.fireUserInboundEventTriggered(event)
    }
}
