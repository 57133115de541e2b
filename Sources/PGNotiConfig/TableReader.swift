import Foundation
import PGNotiCore
import TOMLKit

/// Typed access to one TOML table that reports the full dotted key on every error.
struct TableReader {
    let table: TOMLTable
    let path: String

    init(table: TOMLTable, path: String) {
        self.table = table
        self.path = path
    }

    init(parsing text: String) throws(ConfigError) {
        do {
            self.init(table: try TOMLTable(string: text), path: "")
        } catch let error as TOMLParseError {
            throw ConfigError("config", "not valid TOML: \(error.description) at line \(error.source.begin.line)")
        } catch {
            throw ConfigError("config", "not valid TOML: \(error)")
        }
    }

    func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func allow(_ keys: Set<String>) throws(ConfigError) {
        for key in table.keys where !keys.contains(key) {
            throw ConfigError(name(key), "unknown key (expected one of: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    func string(_ key: String) throws(ConfigError) -> String? {
        guard let value = table[key] else { return nil }
        guard let string = value.string else { throw ConfigError(name(key), "expected a string") }
        return string
    }

    func int(_ key: String) throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        guard let int = value.int else { throw ConfigError(name(key), "expected an integer") }
        return int
    }

    /// An http or https URL with a host (and, unless `allowQuery`, no query).
    func httpURL(_ key: String, expected: String, allowQuery: Bool = true) throws(ConfigError) -> String? {
        guard let text = try string(key) else { return nil }
        guard let url = URL(string: text), ["http", "https"].contains(url.scheme?.lowercased() ?? ""),
            url.host?.isEmpty == false, allowQuery || url.query == nil
        else { throw ConfigError(name(key), "expected \(expected)") }
        return text
    }

    /// A number, written with or without a fraction.
    func double(_ key: String) throws(ConfigError) -> Double? {
        guard let value = table[key] else { return nil }
        if let int = value.int { return Double(int) }
        guard let double = value.double else { throw ConfigError(name(key), "expected a number") }
        return double
    }

    func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let bool = value.bool else { throw ConfigError(name(key), "expected true or false") }
        return bool
    }

    func table(_ key: String) throws(ConfigError) -> TableReader? {
        guard let value = table[key] else { return nil }
        guard let sub = value.table else { throw ConfigError(name(key), "expected a table [\(name(key))]") }
        return TableReader(table: sub, path: name(key))
    }

    /// An array of strings.
    func strings(_ key: String) throws(ConfigError) -> [String]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else { throw ConfigError(name(key), "expected an array of strings") }
        var out: [String] = []
        for (index, element) in array.enumerated() {
            guard let string = element.string else { throw ConfigError("\(name(key))[\(index)]", "expected a string") }
            out.append(string)
        }
        return out
    }

    /// A secret given as one string or as an array of them (two while rotating). Errors name the
    /// key, never the value.
    func secrets(_ key: String) throws(ConfigError) -> [String] {
        guard let value = table[key] else { return [] }
        if let single = value.string { return single.isEmpty ? [] : [single] }
        guard value.array != nil else { throw ConfigError(name(key), "expected a string or an array of strings") }
        return try strings(key)?.filter { !$0.isEmpty } ?? []
    }

    func cidrs(_ key: String) throws(ConfigError) -> [CIDR]? {
        guard let texts = try strings(key) else { return nil }
        var out: [CIDR] = []
        for (index, text) in texts.enumerated() {
            guard let cidr = CIDR(text) else {
                throw ConfigError("\(name(key))[\(index)]", "\"\(text)\" is not an IPv4 or IPv6 address or CIDR block")
            }
            out.append(cidr)
        }
        return out
    }

    func charsetSetting(_ key: String) throws(ConfigError) -> CharsetSetting? {
        guard let label = try string(key) else { return nil }
        if label.lowercased() == "auto" { return .auto }
        guard let charset = TextCharset(label: label) else {
            throw ConfigError(name(key), "unknown charset \"\(label)\" (use cp949/euc-kr, utf-8 or auto)")
        }
        return .fixed(charset)
    }
}
