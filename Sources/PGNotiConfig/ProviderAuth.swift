import Foundation
import PGNotiCore

/// How a provider's notifications are authenticated beyond what the PG itself signs.
public struct ProviderAuth: Sendable, Equatable {
    /// The URL is `/notify/<provider>/<secret>` when set; any value of the set is accepted.
    public var pathSecrets = SecretValues([])
    /// Client addresses (after `trusted_proxies`) the PG posts from; empty accepts any.
    public var allowSources: [CIDR] = []
    /// MIDs accepted; nil accepts any.
    public var merchants: Set<String>?
    /// Runs an unsigned PG without a path secret or allowlist, knowingly.
    public var allowUnauthenticated = false
    /// Accepts the PG's published test merchants outside sandbox mode.
    public var acceptTestMerchants = false
    /// Test merchants beyond the ones the PG publishes.
    public var extraTestMerchants: Set<String> = []

    public init() {}

    /// Authenticated by something the operator configured (the PG's own signature aside).
    public var hasTransportAuthentication: Bool { !pathSecrets.isEmpty || !allowSources.isEmpty }
}

extension ConfigLoader {
    public static func pathSecretCredential(_ provider: ProviderID) -> String { "\(provider.rawValue)-path-secret" }

    /// The same rules for a configuration built in code (sandbox aside): an unsigned PG needs a
    /// path secret or an allowlist unless the operator says otherwise in so many words.
    public func requireAuthentication(_ config: Config) throws(ConfigError) {
        guard !config.sandbox else { return }
        for id in config.unsignedNotifyPGs {
            let auth = config.auth(for: id)
            guard !auth.hasTransportAuthentication && !auth.allowUnauthenticated else { continue }
            throw ConfigError(
                id.rawValue,
                "\(id.rawValue) signs nothing, so it needs path_secret (or path_secret_file, or the \(Self.pathSecretCredential(id)) credential) or allow_sources; set allow_unauthenticated = true to run it without either, or enabled = false"
            )
        }
    }

    static let authKeys: Set<String> = [
        "path_secret", "path_secret_file", "allow_sources", "merchants", "allow_unauthenticated",
        "accept_test_merchants", "test_merchants",
    ]

    func parseAuth(
        _ table: TableReader, provider: ProviderID, enabled: Bool, _ report: inout SecretReport
    ) throws(ConfigError) -> ProviderAuth {
        var auth = ProviderAuth()
        var secrets = try table.secrets("path_secret")
        let credential = Self.pathSecretCredential(provider)
        let fileKey = table.name("path_secret_file")
        if let file = try table.string("path_secret_file") {
            report.files.append(SecretFile(key: fileKey, path: file))
            if let lines = try deferrable(
                &report, { () throws(ConfigError) in try readSecretLines(file, key: fileKey) })
            {
                // tmpfiles.d creates the shipped secret files empty: an empty one named here is a
                // secret not yet written, not "no secret wanted".
                if lines.isEmpty && enabled && secretsRequired {
                    throw ConfigError(
                        fileKey,
                        "\(file) is empty: write the path secret into it, or remove path_secret_file to rely on allow_sources alone"
                    )
                }
                secrets += lines
            }
            noteIgnoredCredential(credential, because: fileKey, file: file, &report)
        } else if let path = credentialPath(credential) {
            let name = "credential \(credential)"
            secrets += try deferrable(&report, { () throws(ConfigError) in try readSecretLines(path, key: name) }) ?? []
        }
        for (index, secret) in secrets.enumerated() {
            let key = "\(table.name("path_secret"))[\(index)]"
            guard secret.utf8.count >= 16 else {
                throw ConfigError(
                    key, "a path secret must be at least 16 characters (it is the only thing that keeps forgers out)")
            }
            guard secret.utf8.allSatisfy(Self.isUnreservedURLByte) else {
                throw ConfigError(
                    key, "a path secret may contain only A-Z a-z 0-9 - . _ ~ (it becomes part of the URL)")
            }
        }
        auth.pathSecrets = SecretValues(Self.unique(secrets))
        auth.allowSources = try table.cidrs("allow_sources") ?? []
        if let merchants = try table.strings("merchants") { auth.merchants = Set(merchants) }
        auth.allowUnauthenticated = try table.bool("allow_unauthenticated") ?? false
        auth.acceptTestMerchants = try table.bool("accept_test_merchants") ?? false
        auth.extraTestMerchants = Set(try table.strings("test_merchants") ?? [])
        return auth
    }

    static func isUnreservedURLByte(_ b: UInt8) -> Bool {
        (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "~")
    }
}
