import Foundation
import Hummingbird
import Logging
import NIOCore
import PGNotiCore
import PGNotiIntake
import Prometheus

/// The admin listener, separate from the public one and on loopback by default: `/healthz`,
/// `/readyz` and `/metrics` (Prometheus text format).
struct AdminListener {
    let daemon: RunningDaemon
    let registry: PrometheusCollectorRegistry
    /// The Payup client's two routes, when `[payup]` has a merchant, a key and a client token.
    var payup: PayupClient?

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/healthz") { _, _ in
            Self.text(.ok, "ok\n")
        }
        router.get("/readyz") { _, _ in
            let checks = await daemon.readiness()
            let ready = checks.allSatisfy(\.ok)
            var json = JSONWriter()
            json.beginObject()
            json.member("ready", ready)
            json.key("checks")
            json.beginObject()
            for check in checks {
                json.key(check.name)
                json.beginObject()
                json.member("ok", check.ok)
                json.member("detail", check.detail)
                json.endObject()
            }
            json.endObject()
            json.endObject()
            var body = json.bytes
            body.append(0x0A)
            return Response(
                status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/metrics") { _, _ in
            await daemon.updateGauges()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        if let payup {
            for operation in [PayupClient.Operation.approve, .cancel] {
                router.post("/payup/\(operation.rawValue)") { request, _ in
                    guard payup.authorizes(request.headers[.authorization]) else {
                        var response = Self.text(.unauthorized, "a valid Authorization: Bearer token is required\n")
                        response.headers[.wwwAuthenticate] = "Bearer"
                        return response
                    }
                    let body = try await request.body.collect(upTo: 64 * 1024)
                    let answer = await payup.call(operation, body: Array(body.readableBytesView))
                    return Response(
                        status: .init(code: answer.status),
                        headers: [.contentType: "application/json; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
                }
            }
        }
        return router
    }

    static func text(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(
            status: status, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
