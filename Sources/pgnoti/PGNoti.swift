import ArgumentParser
import Foundation
import PGNotiServer

@main
struct PGNoti: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pgnoti",
        abstract: "Receives Korean PG payment notifications, stores each once, ACKs after commit, queues JSON events.",
        subcommands: [Serve.self, CheckConfig.self, Send.self],
        defaultSubcommand: Serve.self)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the notification listener (under systemd: Type=notify).")

    @Option(
        name: .long,
        help: "Path to pgnoti.toml. Without it pgnoti runs in sandbox mode on 127.0.0.1:8080 with state under ./var.")
    var config: String?

    @Option(name: .long, help: "Override the listen address (HOST:PORT; port 0 picks a free port).")
    var listen: String?

    func run() async throws {
        var settings: Config
        if let config {
            do { settings = try ConfigLoader().load(path: config) } catch {
                FileHandle.standardError.write(Data("pgnoti: invalid configuration: \(error)\n".utf8))
                throw ExitCode(78)  // EX_CONFIG: systemd will not restart-loop on it
            }
        } else {
            settings = Config.sandbox()
        }
        if let listen {
            guard let address = ListenAddress(parsing: listen) else {
                throw ValidationError("--listen expects HOST:PORT")
            }
            settings.listen = address
        }
        let daemon = Daemon(config: settings, logger: Daemon.logger(level: settings.logLevel))
        do { try await daemon.run() } catch {
            FileHandle.standardError.write(Data("pgnoti: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate a configuration file; exits non-zero naming the bad key.")

    @Option(name: .long, help: "Path to pgnoti.toml.")
    var config: String

    func run() throws {
        do {
            let loaded = try ConfigLoader().load(path: config)
            let providers = loaded.providers.map(\.id.rawValue).joined(separator: ", ")
            print(
                "ok: listen \(loaded.listen), database \(loaded.database), queue \(loaded.queue), providers [\(providers)], \(loaded.smartro.merchantKeys.count) Smartro merchant key(s)"
            )
        } catch {
            FileHandle.standardError.write(Data("pgnoti: \(error)\n".utf8))
            throw ExitCode(78)
        }
    }
}

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
