import ArgumentParser
import Foundation
import PGNotiRawHTTP

struct Send: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay a fixture (raw HTTP request bytes) as the PG would; prints status and body.")

    @Argument(help: "A .http fixture file.")
    var file: String

    @Option(name: .long, help: "Target, e.g. http://127.0.0.1:8080/notify/smartro (path defaults to the fixture's).")
    var to: String

    func run() throws {
        guard let url = URL(string: to), url.scheme == "http", let host = url.host else {
            throw ValidationError("--to must be an http:// URL (TLS is terminated in front of pgnoti)")
        }
        let request = try RawHTTPRequest(parsing: Array(try Data(contentsOf: URL(fileURLWithPath: file))))
        let port = url.port ?? 80
        let target = url.path.isEmpty || url.path == "/" ? request.target : url.path
        let hostHeader = url.port.map { "\(host):\($0)" } ?? host
        let response = try RawHTTPClient.exchange(
            host: host, port: port, bytes: request.serialized(host: hostHeader, target: target))
        print("\(response.status)")
        print(response.bodyText)
        if !(200..<300).contains(response.status) { throw ExitCode(1) }
    }
}
