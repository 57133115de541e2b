import PGNotiTestSupport
import Testing

/// Every end-to-end suite is nested here, so they run one after another: each starts real
/// daemons, several of them load both cores, and timing assertions (read deadlines, shutdown)
/// must not compete with another suite's flood. After each test, the daemons it started are
/// stopped and awaited (a `defer` can only send the signal).
@Suite(.serialized, .stopsDaemons) enum EndToEnd {}

/// After each test function: SIGTERM to every daemon the test started and still running, and
/// wait for it to exit (SIGKILL after 30 s), so the next test never shares the machine with it.
struct StopsDaemons: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        guard !test.isSuite else { return try await function() }
        do {
            try await function()
        } catch {
            await DaemonProcess.stopAll()
            throw error
        }
        await DaemonProcess.stopAll()
    }
}

extension Trait where Self == StopsDaemons {
    static var stopsDaemons: Self { StopsDaemons() }
}
