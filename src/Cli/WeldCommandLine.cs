using System.Reflection;
using CommandLine;
using CommandLine.Text;
using Weld.Engine;

namespace Weld.Cli;

/// <summary>Entry point of the `weld` command line: parses verbs and maps failures to exit codes.</summary>
internal static class WeldCommandLine
{
    /// <summary>Runs one command; output goes to the given writers (tests capture them).</summary>
    public static int Run(string[] args, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        stdout ??= Console.Out;
        stderr ??= Console.Error;
        args = MergekitAliases.Rewrite(args);
        using var parser = new Parser(settings =>
        {
            // Help is written below: to stdout when asked for, to stderr (a diagnostic) on a usage error.
            settings.HelpWriter = null;
            settings.CaseInsensitiveEnumValues = true;
            settings.AutoVersion = true;
            settings.AutoHelp = true;
        });
        var result = parser.ParseArguments<InspectOptions, MergeOptions, FinalizeOptions, EvalOptions, DiffOptions, ReportOptions, CompressOptions, AlignOptions, ExtractLoraOptions, ApplyLoraOptions, DecompressOptions, CombineLoraOptions, MoeOptions, MoeCompressOptions>(args);
        if (result.Tag == ParserResultType.NotParsed)
            return WriteHelp(result, ((NotParsed<object>)result).Errors.ToList(), stdout, stderr);

        var console = new CliConsole(stdout, stderr);
        if (BadOutputPath(result.Value) is string problem)
        {
            // A command-line error (exit 2), caught before any work; the engine would refuse it too (exit 1).
            console.Error(problem);
            return ExitCodes.UsageError;
        }
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            return result.Value switch
            {
                InspectOptions o => InspectCommand.Run(o, console),
                MergeOptions o => MergeCommand.Run(o, console, cancel.Token),
                FinalizeOptions o => FinalizeCommand.Run(o, console),
                EvalOptions o => EvalCommand.Run(o, console),
                DiffOptions o => DiffCommand.Run(o, console),
                ReportOptions o => ReportCommand.Run(o, console),
                CompressOptions o => CompressCommand.Run(o, console, cancel.Token),
                AlignOptions o => AlignCommand.Run(o, console),
                ExtractLoraOptions o => ExtractLoraCommand.Run(o, console),
                ApplyLoraOptions o => ApplyLoraCommand.Run(o, console),
                DecompressOptions o => LowRankCommand.Decompress(o, console, cancel.Token),
                CombineLoraOptions o => CombineLoraCommand.Run(o, console),
                MoeOptions o => MoeCommand.Run(o, console, cancel.Token),
                MoeCompressOptions o => MoeCompressCommand.Run(o, console, cancel.Token),
                _ => ExitCodes.UsageError,
            };
        }
        catch (OperationCanceledException)
        {
            console.Error("interrupted; no output was written");
            return ExitCodes.Interrupted;
        }
        catch (WeldException e)
        {
            console.Error(e.Message);
            return ExitCodes.InputError;
        }
        catch (AggregateException e) when (InputCause(e) is { } cause)
        {
            // A parallel loop of a command wrapped a bad-input error: report it as that error.
            console.Error(cause.Message);
            return ExitCodes.InputError;
        }
        catch (IOException e)
        {
            console.Error(e.Message);
            return ExitCodes.InputError;
        }
        catch (UnauthorizedAccessException e)
        {
            console.Error(e.Message);
            return ExitCodes.InputError;
        }
        catch (Exception e)
        {
            console.Error($"internal error (please report it with the command line): {e}");
            return ExitCodes.InternalError;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>The first bad-input error (WeldException, IOException, UnauthorizedAccessException) inside a parallel loop's wrapper.</summary>
    private static Exception? InputCause(AggregateException e) =>
        e.Flatten().InnerExceptions.FirstOrDefault(x => x is WeldException or IOException or UnauthorizedAccessException);

    /// <summary>
    /// The problem with the output path of a command (<c>-o/--output</c>, or the <c>OUT</c> argument), if any: empty,
    /// blank or holding control characters (a NUL cannot be passed to the OS at all).
    /// </summary>
    private static string? BadOutputPath(object options)
    {
        foreach (PropertyInfo property in options.GetType().GetProperties())
        {
            string? flag = property.GetCustomAttribute<OptionAttribute>() is { LongName: "output" } option
                ? (option.ShortName is { Length: > 0 } s ? $"-{s}/--output" : "--output")
                : property.GetCustomAttribute<ValueAttribute>() is { MetaName: "OUT" } ? "OUT" : null;
            if (flag is null || property.GetValue(options) is not string value) continue;
            if (string.IsNullOrWhiteSpace(value))
                return $"{flag} '{value}': empty output path; name the folder to create (e.g. -o out/merged)";
            if (value.Any(char.IsControl))
                return $"{flag} '{value.Replace("\0", "\\0")}': the output path contains control characters";
        }
        return null;
    }

    /// <summary>
    /// Writes the version, the help, or the usage errors with the help. The heading names weld's own assembly:
    /// the parser's default takes the entry assembly, which is not weld when the command runs in-process.
    /// </summary>
    private static int WriteHelp(ParserResult<object> result, List<Error> errors, TextWriter stdout, TextWriter stderr)
    {
        Assembly assembly = typeof(WeldCommandLine).Assembly;
        string version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? assembly.GetName().Version?.ToString() ?? "";
        var heading = new HeadingInfo("weld", version);
        if (errors.Any(e => e.Tag == ErrorType.VersionRequestedError))
        {
            stdout.WriteLine(heading);
            return ExitCodes.Ok;
        }

        string? company = assembly.GetCustomAttribute<AssemblyCompanyAttribute>()?.Company;
        HelpText Brand(HelpText h)
        {
            h.Heading = heading;
            h.Copyright = company is null ? string.Empty : new CopyrightInfo(company, DateTime.Now.Year);
            return h;
        }

        // Without a valid verb, list the verbs (the index), not the options of no verb.
        HelpText help = errors.Any(e => e.Tag is ErrorType.BadVerbSelectedError or ErrorType.NoVerbSelectedError)
            ? HelpText.AutoBuild(result, h => HelpText.DefaultParsingErrorsHandler(result, Brand(h)), e => e, verbsIndex: true)
            : HelpText.AutoBuild(result, Brand);
        bool helpRequested = errors.All(e => e.Tag is ErrorType.HelpRequestedError or ErrorType.HelpVerbRequestedError);
        (helpRequested ? stdout : stderr).WriteLine(help);
        return helpRequested ? ExitCodes.Ok : ExitCodes.UsageError;
    }
}
