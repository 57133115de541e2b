import Foundation
import PGNotiCore

/// How the loader reads secrets: from the files `*_file` keys name, or from systemd
/// credentials, and how strictly (`secretsRequired`).
extension ConfigLoader {
    /// What reading the secrets found, gathered while the tables are parsed.
    struct SecretReport {
        var notes: [String] = []
        var files: [SecretFile] = []
        var unreadable: [ConfigError] = []
    }

    /// A secret read that stops the load only when secrets are required; otherwise its failure
    /// is kept for the command that turns out to need it.
    func deferrable<T>(_ report: inout SecretReport, _ read: () throws(ConfigError) -> T) throws(ConfigError) -> T? {
        do {
            return try read()
        } catch {
            guard !secretsRequired else { throw error }
            report.unreadable.append(error)
            return nil
        }
    }

    /// A `*_file` key wins over the credential of the same secret: systemd copies credentials
    /// when the unit starts and never on reload, so only a file the daemon reads itself can be
    /// rotated by `systemctl reload`. Said once, so an operator who still fills the credential
    /// knows it is not used.
    func noteIgnoredCredential(_ credential: String, because key: String, file: String, _ report: inout SecretReport) {
        guard let path = credentialPath(credential),
            URL(fileURLWithPath: path).standardizedFileURL.path != URL(fileURLWithPath: file).standardizedFileURL.path
        else { return }
        report.notes.append(
            "\(key) is set, so the \(credential) credential is ignored: the daemon reads \(file) itself, and a reload re-reads it"
        )
    }

    /// The file a one-value secret is read from: the `*_file` key when set (and then the
    /// credential is ignored, with a note), else the credential.
    func secretFile(
        _ table: TableReader, _ key: String, credential: String, _ report: inout SecretReport
    ) throws(ConfigError) -> String? {
        guard let file = try table.string(key) else { return credentialPath(credential) }
        report.files.append(SecretFile(key: table.name(key), path: file))
        noteIgnoredCredential(credential, because: table.name(key), file: file, &report)
        return file
    }

    /// The text at `path`, or standard input for `-`. A failure names the file, under `key`.
    func readFileOrStdin(_ path: String, key: String) throws(ConfigError) -> String {
        do {
            return path == "-"
                ? (String(data: FileHandle.standardInput.readDataToEndOfFile(), encoding: .utf8) ?? "")
                : try readFile(path)
        } catch {
            throw ConfigError(key, "cannot read \(path): \(Self.describe(error))")
        }
    }

    /// A one-line secret (a key, a token) from its file: surrounding whitespace and the newline
    /// are trimmed; `-` reads stdin. Errors name the file, never the content.
    public func readSecret(_ path: String, key: String) throws(ConfigError) -> SecretValues {
        let text = try readFileOrStdin(path, key: key)
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, !trimmed.contains(where: \.isNewline) else {
            throw ConfigError(key, "\(path) must hold one line with the secret")
        }
        return SecretValues([trimmed])
    }

    func credentialPath(_ name: String) -> String? {
        let fromSystemd = environment["CREDENTIALS_DIRECTORY"].flatMap { $0.isEmpty ? nil : $0 }
        guard let directory = fromSystemd ?? credentialSourceDirectory else { return nil }
        let path = directory + "/" + name
        return fileExists(path) ? path : nil
    }

    /// One `MID=KEY` per line; `#` starts a comment; a MID may appear twice while its key is
    /// rotated. Base64 keys end in `=`, so only the first `=` separates.
    func readKeyFile(_ path: String, key: String) throws(ConfigError) -> [String: [String]] {
        let text: String
        do { text = try readFile(path) } catch {
            throw ConfigError(key, "cannot read \(path): \(Self.describe(error))")
        }
        var keys: [String: [String]] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw ConfigError(key, "\(path) line \(number + 1): expected MID=KEY")
            }
            let mid = line[..<eq].trimmingCharacters(in: .whitespaces)
            let secret = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard !mid.isEmpty, !secret.isEmpty else {
                throw ConfigError(key, "\(path) line \(number + 1): expected MID=KEY")
            }
            keys[mid, default: []].append(secret)
        }
        return keys
    }

    /// One secret per line, `#` comments and blank lines skipped, surrounding whitespace trimmed.
    func readSecretLines(_ path: String, key: String) throws(ConfigError) -> [String] {
        let text: String
        do { text = try readFile(path) } catch {
            throw ConfigError(key, "cannot read \(path): \(Self.describe(error))")
        }
        return text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }
}
