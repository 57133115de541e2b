import Foundation
import PGNotiCore
import Testing

@testable import PGNotiConfig

/// A loader that reads `files` instead of the disk and `env` instead of the environment.
func inMemoryLoader(files: [String: String] = [:], env: [String: String] = [:]) -> ConfigLoader {
    ConfigLoader(
        environment: env,
        readFile: { path in
            guard let text = files[path] else { throw CocoaError(.fileNoSuchFile) }
            return text
        }, fileExists: { files[$0] != nil })
}

struct ConfigTests {
    func loader(files: [String: String] = [:], env: [String: String] = [:]) -> ConfigLoader {
        inMemoryLoader(files: files, env: env)
    }

    let minimal = """
        [smartro.merchant_keys]
        SMTPAY001m = "k1=="
        """

    static let secretA = "tomato-secret-AAAAAAAAAAAA"
    static let secretB = "tomato-secret-BBBBBBBBBBBB"

    @Test func fullConfigIsRead() throws {
        let config = try loader(files: ["/keys": "# comment\nMID2=abc+/==\n\nMID1=rotated==\n"]).parse(
            """
            listen = "0.0.0.0:9090"
            admin_listen = "127.0.0.1:9999"
            database = "/d/db.sqlite"
            queue = "/d/q"
            log_level = "debug"
            max_body_bytes = 2048
            trusted_proxies = ["10.0.0.0/8", "::1"]
            [limits]
            read_timeout_seconds = 5
            max_connections = 100
            max_header_bytes = 4096
            requests_per_second_per_source = 20
            quarantine_max_bytes = 10485760
            quarantine_keep_days = 7
            [smartro]
            sign_algorithm = "sha256"
            charset = "euc-kr"
            merchant_keys_file = "/keys"
            allow_sources = ["211.193.35.11", "211.193.35.20", "211.193.35.215/32"]
            merchants = ["MID1", "MID2"]
            [smartro.merchant_keys]
            MID1 = "xyz"
            [tomatopay]
            ack_body = "SUCCESS"
            path_secret = ["\(Self.secretA)", "\(Self.secretB)"]
            charset = "auto"
            [innopay]
            enabled = false
            """)
        #expect(config.listen == ListenAddress(host: "0.0.0.0", port: 9090))
        #expect(config.adminListen == ListenAddress(host: "127.0.0.1", port: 9999))
        #expect(config.database == "/d/db.sqlite")
        #expect(config.queue == "/d/q")
        #expect(config.logLevel == .debug)
        #expect(config.maxBodyBytes == 2048)
        #expect(config.trustedProxies == [CIDR("10.0.0.0/8")!, CIDR("::1")!])
        #expect(config.limits.readTimeoutSeconds == 5)
        #expect(config.limits.maxConnections == 100)
        #expect(config.limits.maxHeaderBytes == 4096)
        #expect(config.limits.requestsPerSecondPerSource == 20)
        #expect(config.limits.quarantineMaxBytes == 10_485_760)
        #expect(config.limits.quarantineKeepDays == 7)
        #expect(config.smartro.signAlgorithm == .sha256)
        #expect(
            config.smartro.merchantKeys == [
                "MID1": SecretValues(["xyz", "rotated=="]), "MID2": SecretValues(["abc+/=="]),
            ])
        #expect(config.smartro.auth.allowSources.count == 3)
        #expect(config.smartro.auth.merchants == ["MID1", "MID2"])
        #expect(config.tomatopay.ackBody == "SUCCESS")
        #expect(config.tomatopay.charset == .auto)
        #expect(config.tomatopay.auth.pathSecrets.matches(Self.secretA))
        #expect(config.tomatopay.auth.pathSecrets.matches(Self.secretB))
        #expect(config.providers.map(\.id) == [.smartro, .tomatopay])
        #expect(!config.sandbox)
    }

    @Test func defaultsWhenTheTablesAreAbsent() throws {
        let config = try loader().parse("")
        #expect(config.providers.isEmpty, "a PG that is not configured is not enabled")
        #expect(config.adminListen == ListenAddress(host: "127.0.0.1", port: 9759))
        #expect(config.limits == Limits())
        #expect(config.limits.readTimeoutSeconds == 10)
        #expect(config.limits.maxConnections == 4096)
        #expect(config.limits.requestsPerSecondPerSource == 0)
        #expect(config.limits.quarantineMaxBytes == 256 * 1024 * 1024)
        #expect(config.limits.quarantineKeepDays == 30)
        #expect(config.warnings.contains { $0.contains("no PG is enabled") })
        #expect(try loader().parse("admin_listen = \"off\"").adminListen == nil)
    }

    @Test func minFreeBytesIsReadAndMustBeANonNegativeInteger() throws {
        #expect(try loader().parse("").minFreeBytes == 64 * 1024 * 1024)
        #expect(try loader().parse("min_free_bytes = 0").minFreeBytes == 0)
        #expect(try loader().parse("min_free_bytes = 1125899906842624").minFreeBytes == 1 << 50)
        for (toml, problem) in [
            ("min_free_bytes = -1", "must not be negative"), ("min_free_bytes = \"64MiB\"", "expected an integer"),
        ] {
            do {
                _ = try loader().parse(toml)
                Issue.record("accepted: \(toml)")
            } catch {
                #expect(error.key == "min_free_bytes", "\(error)")
                #expect(error.problem.contains(problem), "\(error)")
            }
        }
    }

    /// `retention` is off by default; a span of at least a day (any unit TimeSpec knows) turns
    /// the daily purge on; anything else is refused, naming the key.
    @Test func retentionIsOffByDefaultAndReadAsASpanOfAtLeastADay() throws {
        #expect(try loader().parse("").retentionSeconds == nil)
        #expect(try loader().parse("retention = \"off\"").retentionSeconds == nil)
        for (value, seconds) in [("400d", 400 * 86_400.0), ("1d", 86_400), ("2w", 14 * 86_400), ("24h", 86_400)] {
            #expect(try loader().parse("retention = \"\(value)\"").retentionSeconds == seconds, "\(value)")
        }
        for toml in [
            "retention = \"12h\"", "retention = \"86399s\"", "retention = \"0d\"", "retention = \"-1d\"",
            "retention = \"400\"", "retention = \"forever\"", "retention = \"\"", "retention = \"2026-11-23\"",
            "retention = 400",
        ] {
            do {
                _ = try loader().parse(toml)
                Issue.record("accepted: \(toml)")
            } catch {
                #expect(error.key == "retention", "\(toml): \(error)")
                if toml != "retention = 400" { #expect(error.problem.contains("at least a day"), "\(error)") }
            }
        }
    }

    @Test func secretsComeFromTheSystemdCredentialDirectory() throws {
        let config = try loader(
            files: [
                "/run/creds/smartro-merchant-keys": "SMTPAY009m=secret==",
                "/run/creds/innopay-path-secret": "# rotated\n\(Self.secretA)\n\(Self.secretB)\n",
            ],
            env: ["CREDENTIALS_DIRECTORY": "/run/creds"]
        ).parse("[smartro]\n[innopay]\n")
        #expect(config.smartro.merchantKeys == ["SMTPAY009m": SecretValues(["secret=="])])
        #expect(config.innopay.auth.pathSecrets.count == 2)
        #expect(config.innopay.auth.pathSecrets.matches(Self.secretB))
    }

    @Test func pathSecretFileHoldsOnePerLine() throws {
        let config = try loader(files: ["/s": "\(Self.secretA)\n\n  \(Self.secretB)  \n"]).parse(
            "[tomatopay]\npath_secret_file = \"/s\"")
        #expect(config.tomatopay.auth.pathSecrets.count == 2)
    }

    @Test(arguments: ["tomatopay", "innopay"])
    func anUnsignedPGNeedsAPathSecretOrAnAllowlist(provider: String) throws {
        do {
            _ = try loader().parse("[\(provider)]\n")
            Issue.record("accepted without authentication")
        } catch {
            #expect(error.key == provider)
            #expect(error.problem.contains("path_secret"))
            #expect(error.problem.contains("allow_sources"))
        }
        let allowed = try loader().parse("[\(provider)]\nallow_sources = [\"192.0.2.0/24\"]")
        #expect(allowed.warnings.isEmpty)
        let knowingly = try loader().parse("[\(provider)]\nallow_unauthenticated = true")
        #expect(knowingly.warnings.contains { $0.contains("unauthenticated") })
        #expect(try loader().parse("[\(provider)]\nenabled = false").providers.isEmpty)
        // The sandbox runs every PG unauthenticated, on loopback, on purpose.
        #expect(throws: Never.self) { try loader().requireAuthentication(Config.sandbox()) }
    }

    @Test(arguments: [
        ("listen = \"nonsense\"", "listen"),
        ("colour = 1", "colour"),
        ("[smartro]\nsign_algorithm = \"sha1\"", "smartro.sign_algorithm"),
        ("[smartro]\nmerchant_key = \"x\"", "smartro.merchant_key"),
        ("[tomatopay]\nack_body = \"\"\nallow_unauthenticated = true", "tomatopay.ack_body"),
        ("[innopay]\ncharset = \"latin1\"", "innopay.charset"),
        ("log_level = \"loud\"", "log_level"),
        ("max_body_bytes = \"big\"", "max_body_bytes"),
        ("[smartro]\nmerchant_keys_file = \"/missing\"", "smartro.merchant_keys_file"),
        ("database = 3", "database"),
        ("trusted_proxies = [\"10.0.0.0/8\", \"proxy.local\"]", "trusted_proxies[1]"),
        ("[innopay]\nallow_sources = [\"300.1.1.1\"]", "innopay.allow_sources[0]"),
        ("[limits]\nread_timeout_seconds = 0", "limits.read_timeout_seconds"),
        ("[limits]\nmax_conections = 5", "limits.max_conections"),
        ("[limits]\nshutdown_grace_seconds = 30", "limits.shutdown_grace_seconds"),
        ("[tomatopay]\npath_secret = \"short\"", "tomatopay.path_secret[0]"),
        ("[tomatopay]\npath_secret = \"has/a/slash/in/it/xxxxxx\"", "tomatopay.path_secret[0]"),
        ("[tomatopay]\nmerchants = \"M1\"\nallow_unauthenticated = true", "tomatopay.merchants"),
        ("admin_listen = \"9759\"", "admin_listen"),
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

    @Test func errorsNeverQuoteASecret() {
        for toml in [
            "[tomatopay]\npath_secret = \"tiny-secret\"",
            "[tomatopay]\npath_secret = [\"\(Self.secretA)\", \"bad secret with spaces 12345\"]",
        ] {
            do {
                _ = try loader().parse(toml)
                Issue.record("accepted")
            } catch {
                #expect(!error.description.contains("tiny-secret"))
                #expect(!error.description.contains("bad secret"))
                #expect(!error.description.contains(Self.secretA))
            }
        }
    }

    @Test func smartroWithoutAnyKeyIsAnError() {
        do {
            _ = try loader().parse("[smartro]\n")
            Issue.record("accepted")
        } catch {
            #expect(error.key == "smartro.merchant_keys")
            #expect(error.problem.contains("enabled = false"))
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

    @Test func sandboxKnowsSmartrosPublishedTestMerchantAndEveryPG() {
        let config = Config.sandbox()
        #expect(config.sandbox)
        #expect(config.listen.description == "127.0.0.1:8080")
        #expect(config.database == "./var/pgnoti.sqlite")
        #expect(config.queue == "./var/queue")
        #expect(config.smartro.merchantKeys["SMTPAY001m"]?.withValues { $0.first?.count } == 88)
        #expect(config.smartro.merchantKeys["SMTPAY001m"]?.withValues { $0.first?.contains(" ") } == false)
        #expect(config.providers.map(\.id) == [.smartro, .tomatopay, .innopay, .toss, .payup])
    }

    @Test func theShippedExampleConfigStartsCleanly() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("systemd/pgnoti.toml")
        let config = try loader().parse(String(contentsOf: url, encoding: .utf8))
        #expect(config.providers.isEmpty, "no PG is configured yet on a fresh install")
    }

    @Test func listenAddressForms() {
        #expect(ListenAddress(parsing: "[::1]:8080") == ListenAddress(host: "::1", port: 8080))
        #expect(ListenAddress(parsing: "127.0.0.1:0")?.port == 0)
        #expect(ListenAddress(parsing: ":80") == nil)
        #expect(ListenAddress(parsing: "host:99999") == nil)
    }
}

struct ForwardConfigTests {
    static let secret = "whsec_cGdub3RpLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODlhYmNk"

    func loader(files: [String: String] = [:], env: [String: String] = [:]) -> ConfigLoader {
        inMemoryLoader(files: files, env: env)
    }

    @Test func forwardTableIsRead() throws {
        let config = try loader().parse(
            """
            [forward]
            url = "https://app.example.com/webhooks/pgnoti"
            secret_file = "/etc/pgnoti/forward-secret"
            timeout_seconds = 5
            connect_timeout_seconds = 1.5
            concurrency = 8
            give_up_after_hours = 24
            keep_done_days = 3
            retry_initial_seconds = 0.5
            """)
        #expect(config.forward.url == "https://app.example.com/webhooks/pgnoti")
        #expect(config.forward.secretPath == "/etc/pgnoti/forward-secret")
        #expect(config.forward.timeoutSeconds == 5 && config.forward.concurrency == 8)
        #expect(config.forward.giveUpAfterHours == 24 && config.forward.keepDoneDays == 3)
        #expect(config.forward.retryInitialSeconds == 0.5)
        #expect(config.forward.connectTimeoutSeconds == 1.5)
        #expect(try loader().parse("").forward == ForwardConfig(), "defaults without the table")
        #expect(ForwardConfig().giveUpAfterHours == 72)
        #expect(ForwardConfig().connectTimeoutSeconds == 5, "a dead app costs seconds, not timeout_seconds")
    }

    @Test func badForwardValuesNameTheirKey() {
        #expect(throws: ConfigError.self) { try loader().parse("[forward]\nurl = \"ftp://x\"") }
        do {
            _ = try loader().parse("[forward]\nconcurrency = 0")
            Issue.record("accepted concurrency 0")
        } catch { #expect(error.key == "forward.concurrency") }
        do {
            _ = try loader().parse("[forward]\nsecret = \"inline\"")
            Issue.record("accepted an inline secret")
        } catch { #expect(error.key == "forward.secret") }
        do {
            _ = try loader().parse("[forward]\nconnect_timeout_seconds = 0")
            Issue.record("accepted connect_timeout_seconds 0")
        } catch { #expect(error.key == "forward.connect_timeout_seconds") }
    }

    @Test func theSecretComesFromItsFileOrTheCredential() throws {
        let fromFile = loader(files: ["/s": Self.secret + "\n"])
        let config = try fromFile.parse("[forward]\nsecret_file = \"/s\"")
        _ = try fromFile.forwardSecret(config.forward)
        let credential = loader(
            files: ["/creds/forward-secret": "  \(Self.secret)  \n"], env: ["CREDENTIALS_DIRECTORY": "/creds"])
        let viaCredential = try credential.parse("[forward]\nurl = \"http://127.0.0.1:9/hook\"")
        #expect(viaCredential.forward.secretPath == "/creds/forward-secret")
        _ = try credential.forwardSecret(viaCredential.forward)
    }

    @Test func aBadSecretIsNamedButNeverShown() throws {
        let leaky = "whsec_not-base64-and-secret!"
        let files = loader(files: ["/s": leaky])
        let config = try files.parse("[forward]\nsecret_file = \"/s\"")
        do {
            _ = try files.forwardSecret(config.forward)
            Issue.record("accepted a secret that is not Base64")
        } catch {
            #expect(error.key == "forward.secret_file")
            #expect(!error.description.contains("not-base64-and-secret"))
        }
        do {
            _ = try loader().forwardSecret(ForwardConfig())
            Issue.record("no secret at all was accepted")
        } catch { #expect(error.problem.contains("--secret-file")) }
    }
}

struct SourceConfigTests {
    func loader(files: [String: String] = [:], env: [String: String] = [:]) -> ConfigLoader {
        inMemoryLoader(files: files, env: env)
    }

    @Test func tossAndPayupTablesAreRead() throws {
        let config = try loader(env: ["CREDENTIALS_DIRECTORY": "/c"]).parse(
            """
            [toss]
            inbox = "/srv/toss/inbox"
            stable_seconds = 5
            final_after_minutes = 30
            merchant_id = "tossmid"
            mert_key_file = "/etc/pgnoti/toss-mert-key"
            pull_interval_minutes = 20

            [payup]
            base_url = "https://api.payup.co.kr/"
            merchant_id = "shop1"
            api_cert_key_file = "/k"
            client_token_file = "/t"
            """)
        #expect(config.toss.enabled && config.toss.inbox == "/srv/toss/inbox" && config.toss.stableSeconds == 5)
        #expect(config.toss.finalAfterMinutes == 30 && config.toss.pullIntervalMinutes == 20)
        #expect(config.toss.pullURL.hasSuffix("/trxdown.jsp"))
        #expect(config.payup.baseURL == "https://api.payup.co.kr" && config.payup.clientConfigured)
        #expect(config.providers.map(\.id).contains(.toss) && config.providers.map(\.id).contains(.payup))
        #expect(try loader().parse("").providers.allSatisfy { $0.id != .toss && $0.id != .payup })
    }

    @Test func thePayupClientKeepsTheAdminListenerOnLoopback() throws {
        let payup = "[payup]\nmerchant_id = \"shop1\"\napi_cert_key_file = \"/k\"\nclient_token_file = \"/t\"\n"
        do {
            _ = try loader().parse("admin_listen = \"0.0.0.0:9759\"\n" + payup)
            Issue.record("a Payup client on a public admin listener was accepted")
        } catch { #expect(error.key == "admin_listen") }
        #expect(try loader().parse("admin_listen = \"[::1]:9759\"\n" + payup).payup.clientConfigured)
        #expect(try loader().parse("admin_listen = \"0.0.0.0:9759\"\n").adminListen?.host == "0.0.0.0")
    }

    @Test func aPullNeedsItsMerchantAndKey() {
        do {
            _ = try loader().parse("[toss]\npull_interval_minutes = 20")
            Issue.record("a pull without a MertKey was accepted")
        } catch { #expect(error.key == "toss.pull_interval_minutes") }
    }

    @Test func secretsComeFromCredentialsAndAreTrimmed() throws {
        let files = [
            "/c/toss-mert-key": "  mert \n", "/c/payup-api-cert-key": "k\n", "/c/payup-client-token": "t\n",
        ]
        let loader = loader(files: files, env: ["CREDENTIALS_DIRECTORY": "/c"])
        let config = try loader.parse("[toss]\nmerchant_id = \"m\"\n[payup]\nmerchant_id = \"p\"")
        #expect(config.toss.mertKeyPath == "/c/toss-mert-key" && config.payup.clientConfigured)
        let key = try loader.readSecret("/c/toss-mert-key", key: "toss.mert_key_file")
        #expect(key.matches("mert"))
        do {
            _ = try loader.readSecret("/missing", key: "payup.api_cert_key_file")
            Issue.record("a missing key file was accepted")
        } catch { #expect(error.key == "payup.api_cert_key_file") }
    }
}

/// `test_merchants` extends a PG's published test merchants and `accept_test_merchants` takes
/// them outside sandbox mode. Both are per-PG keys; Intake's FidelityIntakeTests show the parsed
/// values taking effect through `IntakePolicy(config:)` (this target does not link the intake).
@Suite struct TestMerchantConfigTests {
    func loader() -> ConfigLoader { inMemoryLoader() }

    static let secret = "tomato-secret-AAAAAAAAAAAA"

    @Test(arguments: ["smartro", "tomatopay", "innopay"])
    func testMerchantKeysAreReadPerPG(provider: String) throws {
        let table = """
            [\(provider)]
            path_secret = "\(Self.secret)"
            test_merchants = ["X1", "X2"]
            accept_test_merchants = true
            [smartro.merchant_keys]
            SMTPAY001m = "k1=="
            """
        let config = try loader().parse(table)
        let id = try #require(ProviderID(rawValue: provider))
        let auth = config.auth(for: id)
        #expect(auth.extraTestMerchants == ["X1", "X2"])
        #expect(auth.acceptTestMerchants)
        for other in [ProviderID.smartro, .tomatopay, .innopay] where other != id {
            #expect(config.auth(for: other).extraTestMerchants.isEmpty, "\(other) took \(provider)'s list")
            #expect(!config.auth(for: other).acceptTestMerchants, "\(other) took \(provider)'s acceptance")
        }
    }

    @Test func withoutTheKeysNoExtraTestMerchantIsKnownAndNoneIsAccepted() throws {
        let config = try loader().parse("[tomatopay]\npath_secret = \"\(Self.secret)\"")
        #expect(config.tomatopay.auth.extraTestMerchants.isEmpty)
        #expect(!config.tomatopay.auth.acceptTestMerchants)
        #expect(
            try loader().parse("[tomatopay]\npath_secret = \"\(Self.secret)\"\ntest_merchants = []")
                .tomatopay.auth.extraTestMerchants.isEmpty)
    }

    @Test(arguments: [
        ("test_merchants = \"X1\"", "tomatopay.test_merchants"),
        ("test_merchants = [1]", "tomatopay.test_merchants[0]"),
        ("accept_test_merchants = \"yes\"", "tomatopay.accept_test_merchants"),
        ("accept_test_merchant = true", "tomatopay.accept_test_merchant"),
    ])
    func badValuesNameTheirKey(line: String, key: String) {
        do {
            _ = try loader().parse("[tomatopay]\npath_secret = \"\(Self.secret)\"\n\(line)")
            Issue.record("accepted: \(line)")
        } catch {
            #expect(error.key == key, "\(error)")
        }
    }
}

/// Secrets as the shipped install keeps them: files under /etc/pgnoti that the daemon reads
/// itself, with systemd credentials as the older way in.
struct SecretSourceTests {
    static let key = "SMTPAY001m=k1=="
    static let innopaySecret = "innopay-path-secret-0123456789"

    @Test func aFileKeyWinsOverTheCredentialAndSaysSo() throws {
        let loader = inMemoryLoader(
            files: ["/etc/pgnoti/keys": "SMTPAY001m=new==\n", "/creds/smartro-merchant-keys": "SMTPAY001m=old==\n"],
            env: ["CREDENTIALS_DIRECTORY": "/creds"])
        let config = try loader.parse("[smartro]\nmerchant_keys_file = \"/etc/pgnoti/keys\"")
        #expect(config.smartro.merchantKeys["SMTPAY001m"]?.matches("new==") == true)
        #expect(config.smartro.merchantKeys["SMTPAY001m"]?.matches("old==") == false, "the stale copy is not used")
        #expect(config.notes.count == 1)
        #expect(config.notes.first?.contains("smartro-merchant-keys credential is ignored") == true)
        #expect(config.secretFiles == [SecretFile(key: "smartro.merchant_keys_file", path: "/etc/pgnoti/keys")])
        // Without a file key the credential is still read, for installs that rely on it.
        let old = try loader.parse("[smartro]")
        #expect(old.smartro.merchantKeys["SMTPAY001m"]?.matches("old==") == true)
        #expect(old.notes.isEmpty)
    }

    @Test func outsideSystemdTheCredentialsAreTheFilesBesideTheConfig() throws {
        // What `sudo pgnoti check-config` and the postinst see: the files the unit's
        // LoadCredential= lines copy, not nothing.
        let loader = inMemoryLoader(files: [
            "/etc/pgnoti/pgnoti.toml": "[smartro]\n[innopay]\n",
            "/etc/pgnoti/smartro-merchant-keys": Self.key + "\n",
            "/etc/pgnoti/innopay-path-secret": Self.innopaySecret + "\n",
        ])
        let config = try loader.load(path: "/etc/pgnoti/pgnoti.toml")
        #expect(config.smartro.merchantKeys.keys.sorted() == ["SMTPAY001m"])
        #expect(config.innopay.auth.pathSecrets.matches(Self.innopaySecret))
        #expect(config.notes.isEmpty, "the file key and the credential are the same file here")
    }

    @Test func operatorCommandsLoadWithoutTheSecretsTheyDoNotUse() throws {
        var loader = inMemoryLoader(files: [:])
        loader.secretsRequired = false
        let text = """
            [smartro]
            merchant_keys_file = "/etc/pgnoti/smartro-merchant-keys"
            [innopay]
            path_secret_file = "/etc/pgnoti/innopay-path-secret"
            """
        let config = try loader.parse(text)
        #expect(config.smartro.enabled && config.innopay.enabled)
        #expect(config.unreadableSecrets.map(\.key) == ["smartro.merchant_keys_file", "innopay.path_secret_file"])
        // The daemon and check-config still refuse it, naming the file.
        do {
            _ = try inMemoryLoader().parse(text)
            Issue.record("accepted without keys")
        } catch {
            #expect(error.key == "smartro.merchant_keys_file")
            #expect(error.problem.contains("/etc/pgnoti/smartro-merchant-keys"))
        }
    }

    @Test func anEmptySecretFileOfAnEnabledPGIsAnError() {
        let files = ["/s": "", "/k": "# nothing yet\n"]
        do {
            _ = try inMemoryLoader(files: files).parse(
                "[innopay]\npath_secret_file = \"/s\"\nallow_sources = [\"203.0.113.20\"]")
            Issue.record("an empty path secret file was taken as no secret")
        } catch {
            #expect(error.key == "innopay.path_secret_file")
            #expect(error.problem.contains("is empty"))
        }
        do {
            _ = try inMemoryLoader(files: files).parse("[smartro]\nmerchant_keys_file = \"/k\"")
            Issue.record("an empty key file was taken")
        } catch {
            #expect(error.key == "smartro.merchant_keys_file")
        }
        // A disabled PG's empty file is what tmpfiles.d ships: fine.
        #expect(
            (try? inMemoryLoader(files: files).parse("[innopay]\nenabled = false\npath_secret_file = \"/s\"")) != nil)
    }

    @Test func aListedMerchantWithoutAKeyIsAnError() {
        do {
            _ = try inMemoryLoader(files: ["/k": "OTHER001m=k==\n"]).parse(
                "[smartro]\nmerchant_keys_file = \"/k\"\nmerchants = [\"SHOP0001m\"]")
            Issue.record("a merchant without a key was accepted")
        } catch {
            #expect(error.key == "smartro.merchants")
            #expect(error.problem.contains("SHOP0001m"))
        }
    }

    @Test func aDirectoryOrAMissingFileIsNamedInPlainWords() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgnoti-secret-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            _ = try ConfigLoader(environment: [:]).parse("[smartro]\nmerchant_keys_file = \"\(directory.path)\"")
            Issue.record("a directory was read")
        } catch {
            #expect(error.problem.contains("is a directory, not a file"), "\(error)")
            #expect(!error.problem.contains("NSCocoaErrorDomain"))
        }
        do {
            _ = try ConfigLoader(environment: [:]).parse(
                "[smartro]\nmerchant_keys_file = \"\(directory.path)/missing\"")
            Issue.record("a missing file was read")
        } catch {
            #expect(error.problem.contains("no such file"), "\(error)")
        }
    }

    @Test func whetherTheServiceUserCanReadIsJudgedByItsOwnPermissions() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgnoti-access-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        chmod(directory.path, 0o755)
        let file = directory.appendingPathComponent("secret").path
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        chmod(file, 0o600)
        guard geteuid() == 0, getpwnam("nobody") != nil else { return }
        chown(file, 0, 0)
        let problem = ReadAccess.problem(user: "nobody", path: file)
        #expect(problem?.contains("cannot read") == true, "\(problem ?? "nil")")
        #expect(problem?.contains("0600") == true)
        chmod(file, 0o644)
        #expect(ReadAccess.problem(user: "nobody", path: file) == nil)
    }
}
