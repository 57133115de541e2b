import ArgumentParser
import Foundation
import Logging
import PGNotiConfig
import PGNotiLogging
import PGNotiPostgres
import PGNotiServer

#if canImport(Glibc)
    import Glibc
#endif

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the notification listener (under systemd: Type=notify).")

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Override the listen address (HOST:PORT; port 0 picks a free port).")
    var listen: String?

    @Option(name: .long, help: "Override the admin listener (HOST:PORT, port 0 picks a free port, or \"off\").")
    var adminListen: String?

    func run() async throws {
        var settings = try options.load(requiringSecrets: true)
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

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate a configuration file; exits 78 naming the bad key.")

    @Option(name: .long, help: "Path to pgnoti.toml.")
    var config: String

    @Option(
        name: .long,
        help:
            "The user the service runs as. Run as root, check-config also checks that this user can read every secret file."
    )
    var serviceUser = "pgnoti"

    func run() async throws {
        do {
            let loaded = try ConfigLoader().load(path: config)
            let providers = loaded.providers.map(\.id.rawValue).joined(separator: ", ")
            let queue = loaded.postgres == nil ? "queue \(loaded.queue)" : "events delivered from the database"
            print(
                "ok: listen \(loaded.listen), database \(loaded.database), \(queue), providers [\(providers)], \(loaded.smartro.merchantKeys.count) Smartro merchant(s) with keys"
            )
            if let postgres = loaded.postgres { await reportDatabase(postgres) }
            for note in loaded.notes { print("note: \(note)") }
            try checkServiceUserCanRead(loaded)
            try checkSourceSecrets(loaded)
            if let url = loaded.forward.url {
                // The forwarder reads its secret only when it starts; check it now, not then.
                if loaded.forward.secretPath != nil {
                    _ = try ConfigLoader().forwardSecret(loaded.forward)
                    print("ok: forward to \(url) with a valid signing secret")
                } else {
                    // An old install whose forwarder unit alone loads the forward-secret
                    // credential: pgnoti.service runs this check too and cannot see it.
                    print(
                        "note: forward to \(url): no signing secret visible here (set forward.secret_file = \"/etc/pgnoti/forward-secret\"); pgnoti forward checks it when it starts"
                    )
                }
            }
            for warning in loaded.warnings { print("warning: \(warning)") }
        } catch {
            printError("\(error)")
            throw ExitCode(78)
        }
    }

    /// Connects and says what it found. An unreachable database is a warning, not a failure:
    /// this is the unit's ExecStartPre, and the database may come up after the daemon.
    func reportDatabase(_ postgres: PostgresSettings) async {
        var logger = Logger(label: "pgnoti.check-config")
        logger.logLevel = .critical
        switch await PostgresSession(settings: postgres).probe(logger: logger) {
        case .reachable(let schema?, let knows) where schema > knows:
            print("warning: database reachable; schema \(schema) is newer than this pgnoti knows (\(knows))")
        case .reachable(let schema?, _):
            print("ok: database reachable, schema \(schema)")
        case .reachable(nil, let knows):
            print("ok: database reachable, no pgnoti tables yet (serve creates schema \(knows))")
        case .unreachable(let reason):
            print("warning: database unreachable (\(reason)); serve starts not ready and connects when it can")
        }
    }

    /// Root passes every permission check, so a file root can read says nothing about the
    /// service user: ask for that user instead.
    func checkServiceUserCanRead(_ config: Config) throws(ConfigError) {
        guard geteuid() == 0, getpwnam(serviceUser) != nil else { return }
        for file in config.secretFiles {
            if let problem = ReadAccess.problem(user: serviceUser, path: file.path) {
                throw ConfigError(
                    file.key,
                    "\(problem); the daemon runs as \(serviceUser): chown root:\(serviceUser) \(file.path) && chmod 0640 \(file.path)"
                )
            }
        }
    }

    /// The secrets the sources read only when they run (the Toss pull's MertKey, the Payup
    /// client's key and token): an enabled feature with an empty or unreadable one fails now.
    func checkSourceSecrets(_ config: Config) throws(ConfigError) {
        let loader = ConfigLoader()
        if config.toss.enabled, config.toss.pullIntervalMinutes != nil, let path = config.toss.mertKeyPath {
            _ = try loader.readSecret(path, key: "toss.mert_key_file")
        }
        if config.payup.clientConfigured, let key = config.payup.apiCertKeyPath,
            let token = config.payup.clientTokenPath
        {
            _ = try loader.readSecret(key, key: "payup.api_cert_key_file")
            _ = try loader.readSecret(token, key: "payup.client_token_file")
        }
    }
}
