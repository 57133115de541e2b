import PGNotiCore

/// One notify PG's table in `pgnoti.toml` (`[smartro]`, `[tomatopay]`, `[innopay]` …): how it is
/// read, what it authenticates with, and the provider the intake runs from it.
///
/// Each PG's settings type lives in its own file beside its parsing, and links itself to its
/// provider with `TableConfigured`. The loader finds it from `ProviderID.providerType`, so adding
/// a PG touches its provider file, its settings file, `ProviderID`, fixtures and tests, and no
/// list anywhere else.
protocol NotifyPGSettings: Sendable {
    static var id: ProviderID { get }
    init()
    var enabled: Bool { get }
    var auth: ProviderAuth { get }
    /// Reads the PG's table, `[id]`.
    static func parse(
        _ table: TableReader, _ loader: ConfigLoader, _ report: inout ConfigLoader.SecretReport
    ) throws(ConfigError) -> Self
    /// What the embedded sandbox runs: enabled, with the PG's test merchants accepted.
    static var sandbox: Self { get }
    /// The PG as the intake runs it.
    func makeProvider() -> any PaymentProvider
}

/// A provider configured by a `NotifyPGSettings` table.
protocol TableConfigured: PaymentProvider {
    static var settings: any NotifyPGSettings.Type { get }
}

extension ProviderID {
    /// The settings type of a PG that posts notifications; nil for the sources, whose tables
    /// (`[toss]`, `[payup]`) configure more than a PG.
    var settingsType: (any NotifyPGSettings.Type)? {
        (providerType as? any TableConfigured.Type)?.settings
    }

    /// The PGs configured by a table of their own, in `ProviderID` order.
    static var tableConfigured: [ProviderID] { allCases.filter { $0.settingsType != nil } }
}

extension Config {
    /// One PG's settings, its defaults (disabled) when its table is absent.
    subscript<Settings: NotifyPGSettings>(pg type: Settings.Type) -> Settings {
        get { notifyPGs[Settings.id] as? Settings ?? Settings() }
        set { notifyPGs[Settings.id] = newValue }
    }
}
