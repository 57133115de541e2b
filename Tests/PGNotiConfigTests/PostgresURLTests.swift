import PGNotiConfig
import Testing

/// The URL, read without touching the network.
@Suite struct PostgresURLTests {
    @Test func partsDefaultsAndTheRedactedForm() throws {
        let url = try PostgresURL(parsing: "postgres://app:p%40ss%2Fw0rd@db.example:6543/led%20ger?sslmode=require")
        #expect(url.user == "app" && url.host == "db.example" && url.port == 6543 && url.database == "led ger")
        #expect(url.password?.matches("p@ss/w0rd") == true, "percent-decoded")
        #expect(url.sslMode == .require)
        #expect(url.redacted == "postgresql://app:***@db.example:6543/led ger?sslmode=require")
        #expect("\(url)" == url.redacted)
    }

    @Test func loopbackIsUnencryptedByDefaultAndEverythingElseVerified() throws {
        for host in ["127.0.0.1", "localhost", "[::1]"] {
            #expect(try PostgresURL(parsing: "postgresql://u@\(host)/d").sslMode == .disable, "\(host)")
        }
        #expect(try PostgresURL(parsing: "postgresql://u@10.0.0.5/d").sslMode == .verifyFull)
        #expect(try PostgresURL(parsing: "postgresql://u@[2001:db8::5]:5433/d").host == "2001:db8::5")
    }

    @Test func errorsNeverRepeatThePassword() {
        for text in [
            "postgresql://u:hunter2@/d", "postgresql://u:hunter2@h", "postgresql://u:hunter2@h/d?sslmode=allow",
            "postgresql://u:hunter2@h/d?options=x", "postgresql://:hunter2@h/d", "mysql://u:hunter2@h/d",
        ] {
            do {
                _ = try PostgresURL(parsing: text)
                Issue.record("accepted \(text)")
            } catch {
                #expect(!error.description.contains("hunter2"), "\(error)")
            }
        }
    }
}
