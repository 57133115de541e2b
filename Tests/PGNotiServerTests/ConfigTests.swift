import Foundation
import Testing

@testable import PGNotiServer

struct ConfigTests {
    func loader(files: [String: String] = [:], env: [String: String] = [:]) -> ConfigLoader {
        ConfigLoader(
            environment: env,
            readFile: { path in
                guard let text = files[path] else { throw CocoaError(.fileNoSuchFile) }
                return text
            }, fileExists: { files[$0] != nil })
    }

    let minimal = """
        [smartro.merchant_keys]
        SMTPAY001m = "k1=="
        """

    @Test func fullConfigIsRead() throws {
        let config = try loader(files: ["/keys": "# comment\nMID2=abc+/==\n\n"]).parse(
            """
            listen = "0.0.0.0:9090"
            database = "/d/db.sqlite"
            queue = "/d/q"
            log_level = "debug"
            max_body_bytes = 2048
            [smartro]
            sign_algorithm = "sha256"
            charset = "euc-kr"
            merchant_keys_file = "/keys"
            [smartro.merchant_keys]
            MID1 = "xyz"
            [tomatopay]
            ack_body = "SUCCESS"
            [innopay]
            enabled = false
            """)
        #expect(config.listen == ListenAddress(host: "0.0.0.0", port: 9090))
        #expect(config.database == "/d/db.sqlite")
        #expect(config.queue == "/d/q")
        #expect(config.logLevel == .debug)
        #expect(config.maxBodyBytes == 2048)
        #expect(config.smartro.signAlgorithm == .sha256)
        #expect(config.smartro.merchantKeys == ["MID1": "xyz", "MID2": "abc+/=="])
        #expect(config.tomatopay.ackBody == "SUCCESS")
        #expect(config.providers.map(\.id) == [.smartro, .tomatopay])
        #expect(!config.sandbox)
    }

    @Test func keysComeFromTheSystemdCredentialDirectory() throws {
        let config = try loader(
            files: ["/run/creds/smartro-merchant-keys": "SMTPAY009m=secret=="],
            env: ["CREDENTIALS_DIRECTORY": "/run/creds"]
        ).parse("")
        #expect(config.smartro.merchantKeys == ["SMTPAY009m": "secret=="])
    }

    @Test(arguments: [
        ("listen = \"nonsense\"", "listen"),
        ("colour = 1", "colour"),
        ("[smartro]\nsign_algorithm = \"sha1\"", "smartro.sign_algorithm"),
        ("[smartro]\nmerchant_key = \"x\"", "smartro.merchant_key"),
        ("[tomatopay]\nack_body = \"\"", "tomatopay.ack_body"),
        ("[innopay]\ncharset = \"latin1\"", "innopay.charset"),
        ("log_level = \"loud\"", "log_level"),
        ("max_body_bytes = \"big\"", "max_body_bytes"),
        ("[smartro]\nmerchant_keys_file = \"/missing\"", "smartro.merchant_keys_file"),
        ("database = 3", "database"),
    ])
    func badKeysAreNamed(toml: String, key: String) {
        do {
            _ = try loader().parse(
                minimal.contains("[smartro]") || !toml.contains("[smartro]") ? toml + "\n" + minimal : toml)
            Issue.record("accepted: \(toml)")
        } catch {
            #expect(error.key == key, "\(error)")
        }
    }

    @Test func smartroWithoutAnyKeyIsAnError() {
        do {
            _ = try loader().parse("")
            Issue.record("accepted")
        } catch {
            #expect(error.key == "smartro.merchant_keys")
        }
        #expect(throws: Never.self) { try loader().parse("[smartro]\nenabled = false") }
    }

    @Test func invalidTomlIsReportedWithALine() {
        do {
            _ = try loader().parse("listen = \n")
            Issue.record("accepted")
        } catch {
            #expect(error.key == "config")
            #expect(error.problem.contains("line"))
        }
    }

    @Test func sandboxKnowsSmartrosPublishedTestMerchant() {
        let config = Config.sandbox()
        #expect(config.sandbox)
        #expect(config.listen.description == "127.0.0.1:8080")
        #expect(config.database == "./var/pgnoti.sqlite")
        #expect(config.queue == "./var/queue")
        #expect(config.smartro.merchantKeys["SMTPAY001m"]?.count == 88)
        #expect(config.smartro.merchantKeys["SMTPAY001m"]?.contains(" ") == false)
    }

    @Test func listenAddressForms() {
        #expect(ListenAddress(parsing: "[::1]:8080") == ListenAddress(host: "::1", port: 8080))
        #expect(ListenAddress(parsing: "127.0.0.1:0")?.port == 0)
        #expect(ListenAddress(parsing: ":80") == nil)
        #expect(ListenAddress(parsing: "host:99999") == nil)
    }
}
