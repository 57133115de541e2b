import Foundation
import Logging
import NIOCore
import NIOPosix
import PGNotiConfig
import PGNotiCore
import PGNotiSpool
import PGNotiStore
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

/// `WATCHDOG=1` at half of `$WATCHDOG_USEC`, sent only while the event loops answer and the
/// ledger writer and the relay's I/O thread take their turns. Each is checked for real (a task
/// on every event loop, a turn on each thread), and nothing is filed to do it. A store that
/// fails (disk full, locked) still takes turns: that is a readiness problem, not a hang, and
/// systemd must not restart-loop the daemon through it.
struct WatchdogService: Service {
    let interval: Duration
    let notifier: SystemdNotifier
    let probes: [(name: String, probe: @Sendable () async throws -> Void)]
    let logger: Logger

    /// The interval systemd asks for, halved; nil when no watchdog is configured for this process.
    static func interval(environment: [String: String] = ProcessInfo.processInfo.environment) -> Duration? {
        guard let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"].flatMap(Int32.init), pid != getpid() { return nil }
        return .microseconds(usec / 2)
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var withheld: [String] = []
            while !Task.isCancelled {
                let started = ContinuousClock.now
                let stuck = await tick()
                if stuck.isEmpty, !withheld.isEmpty {
                    logger.notice("watchdog: every part answers again")
                } else if !stuck.isEmpty, stuck != withheld {
                    logger.critical(
                        "watchdog: not answering, WATCHDOG=1 withheld so systemd can restart the daemon",
                        metadata: ["stuck": .string(stuck.joined(separator: ", "))])
                }
                withheld = stuck
                let elapsed = ContinuousClock.now - started
                try? await Task.sleep(for: max(.zero, interval - elapsed))
            }
        }
    }

    /// Runs every probe (each given one interval to answer) and sends WATCHDOG=1 only if all
    /// answered. Returns the names of those that did not.
    func tick() async -> [String] {
        var stuck: [String] = []
        for (name, probe) in probes {
            do { try await withTimeout(interval) { try await probe() } } catch { stuck.append(name) }
        }
        if stuck.isEmpty { notifier.notify("WATCHDOG=1") }
        return stuck
    }

    /// Every event loop of `group` runs a task.
    static func eventLoops(_ group: any EventLoopGroup) -> @Sendable () async throws -> Void {
        {
            for loop in group.makeIterator() {
                try await loop.submit {}.get()
            }
        }
    }
}

/// Keeps `STATUS=` current: address, events filed, outbox depth, and what fails.
struct StatusService: Service {
    let daemon: RunningDaemon
    let notifier: SystemdNotifier
    let every: Duration

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var last = ""
            while !Task.isCancelled {
                try? await Task.sleep(for: every)
                let line = await daemon.statusLine()
                if line != last {
                    notifier.notify("STATUS=\(line)")
                    last = line
                }
            }
        }
    }
}

/// SIGHUP re-reads the configuration. A broken one is refused with a line naming the key and
/// the old one stays in force; either way systemd hears RELOADING=1 … READY=1 around it.
struct ReloadService: Service {
    let daemon: RunningDaemon
    let configPath: String?
    let notifier: SystemdNotifier
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                await reload()
            }
        }
    }

    func reload() async {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let usec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        notifier.notify("RELOADING=1\nMONOTONIC_USEC=\(usec)")
        defer { Task { notifier.notify("READY=1\nSTATUS=\(await daemon.statusLine())") } }
        guard let configPath else {
            logger.notice("reload: sandbox mode has no configuration file; nothing to re-read")
            return
        }
        let config: Config
        do {
            config = try ConfigLoader().load(path: configPath)
        } catch {
            logger.error(
                "reload refused: the new configuration is invalid; the running one stays in force",
                metadata: ["key": .string(error.key), "problem": .string(error.problem), "config": .string(configPath)])
            return
        }
        let restart = daemon.apply(config)
        for note in config.notes { logger.notice("\(note)") }
        for warning in config.warnings { logger.warning("\(warning)") }
        logger.notice(
            "reloaded configuration",
            metadata: [
                "config": .string(configPath), "providers": .array(config.providers.map { .string($0.id.rawValue) }),
                "needs_restart": .array(restart.map { .string($0) }),
            ])
    }
}

/// With `retention` set, purges raw bodies and personal fields older than it once a day (the
/// first time a minute after start).
struct RetentionService: Service {
    let ledger: any LedgerStore
    let retention: Double
    /// The purge stops when the database's file system falls below this.
    let minFreeBytes: Int
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var wait = Duration.seconds(60)
            while !Task.isCancelled {
                do { try await Task.sleep(for: wait) } catch { return }
                wait = .seconds(86_400)
                let cutoff = Date().addingTimeInterval(-retention)
                do {
                    // Short batches with pauses: the ACK path and the watchdog's writer probe wait
                    // for one batch at most, however many rows there are.
                    let directory = (ledger.location as NSString).deletingLastPathComponent
                    let minimum = minFreeBytes
                    let counts = try await ledger.purge(before: cutoff) {
                        FreeSpace.bytes(at: directory).map { $0 >= minimum } ?? true
                    }
                    if counts.stopped != nil {
                        logger.warning(
                            "retention: stopped early, free space is below min_free_bytes; the rest waits for tomorrow")
                    }
                    logger.notice(
                        "retention: purged raw bodies and personal fields",
                        metadata: [
                            "before": .string(PGNotiCore.KoreanTime.iso8601(cutoff)),
                            "notifications": .stringConvertible(counts.notifications),
                            "conflicts": .stringConvertible(counts.conflicts),
                            "quarantine": .stringConvertible(counts.quarantine),
                        ])
                } catch {
                    logger.error("retention: purge failed; trying again tomorrow", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
