import Foundation
import PGNotiTestSupport
import Testing

extension EndToEnd {
    /// The .deb as packaging/build-deb.sh makes it, from the binary this build made (the script's
    /// default, a static release build, is too slow for every test run).
    @Suite struct PackagingTests {
        static var tools: Bool {
            ["/usr/bin/dpkg-deb", "/usr/bin/python3"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
        }

        static func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
            let result = try await runProcess(
                URL(fileURLWithPath: executable), arguments, in: DaemonProcess.packageRoot, mergeOutput: true,
                timeout: .seconds(600))
            return (result.status, result.output)
        }

        @Test(.enabled(if: PackagingTests.tools)) func theDebCarriesWhatItMust() async throws {
            let output = try DaemonProcess.makeDirectory("deb")
            let built = try await Self.run(
                "/bin/bash", ["packaging/build-deb.sh", "--binary", DaemonProcess.binary.path, "--output", output.path])
            #expect(built.status == 0, "\(built.output)")
            let deb = try #require(built.output.split(separator: "\n").last.map(String.init))
            let contents = try await Self.run("/usr/bin/dpkg-deb", ["--contents", deb]).output
            for path in [
                "./usr/bin/pgnoti", "./lib/systemd/system/pgnoti.service",
                "./lib/systemd/system/pgnoti-forward.service",
                "./usr/lib/sysusers.d/pgnoti.conf",
                "./usr/lib/tmpfiles.d/pgnoti.conf", "./etc/pgnoti/pgnoti.toml", "./usr/share/man/man1/pgnoti.1.gz",
                "./usr/share/bash-completion/completions/pgnoti", "./usr/share/zsh/vendor-completions/_pgnoti",
                "./usr/share/doc/pgnoti/README.md",
            ] {
                #expect(contents.contains(path), "\(path)")
            }
            let control = try await Self.run("/usr/bin/dpkg-deb", ["--info", deb]).output
            #expect(
                control.contains("Package: pgnoti")
                    && control.contains("Depends: libc6, libgcc-s1, libstdc++6, libsqlite3-0, libssl3, zlib1g, systemd")
            )
            let unpacked = output.appendingPathComponent("control")
            #expect(try await Self.run("/usr/bin/dpkg-deb", ["--control", deb, unpacked.path]).status == 0)
            let conffiles = try String(contentsOf: unpacked.appendingPathComponent("conffiles"), encoding: .utf8)
            #expect(conffiles == "/etc/pgnoti/pgnoti.toml\n")
            let postinst = try String(contentsOf: unpacked.appendingPathComponent("postinst"), encoding: .utf8)
            for step in ["systemd-sysusers", "systemd-tmpfiles --create", "systemctl daemon-reload"] {
                #expect(postinst.contains(step), "\(step)")
            }
            // An upgrade restarts the daemon only once the new binary accepts the config.
            let check = try #require(postinst.range(of: "check-config --config /etc/pgnoti/pgnoti.toml"))
            let restart = try #require(postinst.range(of: "systemctl restart"))
            #expect(check.lowerBound < restart.lowerBound)
            // The man page is generated from the commands the binary has.
            let man = try await Self.run("/bin/sh", ["-c", "zcat \(output.path)/root/usr/share/man/man1/pgnoti.1.gz"])
                .output
            for command in ["pgnoti quarantine release", "pgnoti events list", "pgnoti backup", "\\-\\-older\\-than"] {
                #expect(man.contains(command), "\(command)")
            }
        }
    }
}
