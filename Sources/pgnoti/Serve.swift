import ArgumentParser
import Foundation
import PGNotiConfig
import PGNotiLogging
import PGNotiServer

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the notification listener (under systemd: Type=notify).")

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Override the listen address (HOST:PORT; port 0 picks a free port).")
    var listen: String?

    @Option(name: .long, help: "Override the admin listener (HOST:PORT, port 0 picks a free port, or \"off\").")
    var adminListen: String?

    func run() async throws {
        var settings = try options.load()
        if let listen {
            guard let address = ListenAddress(parsing: listen) else {
                throw ValidationError("--listen expects HOST:PORT")
            }
            settings.listen = address
        }
        if let adminListen {
            if adminListen == "off" {
                settings.adminListen = nil
            } else {
                guard let address = ListenAddress(parsing: adminListen) else {
                    throw ValidationError("--admin-listen expects HOST:PORT or off")
                }
                settings.adminListen = address
            }
        }
        let sink = LogSink.standardOutput()
        let daemon = Daemon(
            config: settings, configPath: options.config, logger: .json(level: settings.logLevel, sink: sink),
            logSink: sink)
        do {
            try await daemon.run()
            sink.flush()
        } catch {
            sink.flush()
            printError("\(error)")
            throw ExitCode.failure
        }
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate a configuration file; exits 78 naming the bad key.")

    @Option(name: .long, help: "Path to pgnoti.toml.")
    var config: String

    func run() throws {
        do {
            let loaded = try ConfigLoader().load(path: config)
            let providers = loaded.providers.map(\.id.rawValue).joined(separator: ", ")
            print(
                "ok: listen \(loaded.listen), database \(loaded.database), queue \(loaded.queue), providers [\(providers)], \(loaded.smartro.merchantKeys.count) Smartro merchant(s) with keys"
            )
            if loaded.forward.secretPath != nil {
                // The forwarder reads its secret only when it starts; check it now, not then.
                _ = try ConfigLoader().forwardSecret(loaded.forward)
                print("ok: forward to \(loaded.forward.url ?? "(no url: pass --url)") with a valid signing secret")
            } else if let url = loaded.forward.url {
                // pgnoti.service runs this too, and only pgnoti-forward.service loads the
                // forward-secret credential: a secret it cannot see is not an error of this config.
                print(
                    "note: forward to \(url): no signing secret visible here (forward.secret_file, or the \(ConfigLoader.forwardSecretCredential) credential that pgnoti-forward.service loads); pgnoti forward checks it when it starts"
                )
            }
            for warning in loaded.warnings { print("warning: \(warning)") }
        } catch {
            printError("\(error)")
            throw ExitCode(78)
        }
    }
}
