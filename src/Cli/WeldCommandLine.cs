using CommandLine;
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
            settings.HelpWriter = stdout;
            settings.CaseInsensitiveEnumValues = true;
            settings.AutoVersion = true;
            settings.AutoHelp = true;
        });
        var result = parser.ParseArguments<InspectOptions, MergeOptions>(args);
        if (result.Tag == ParserResultType.NotParsed)
        {
            var errors = ((NotParsed<object>)result).Errors;
            bool helpOrVersion = errors.All(e => e.Tag is ErrorType.HelpRequestedError or ErrorType.HelpVerbRequestedError or ErrorType.VersionRequestedError);
            return helpOrVersion ? ExitCodes.Ok : ExitCodes.UsageError;
        }

        var console = new CliConsole(stdout, stderr);
        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
        Console.CancelKeyPress += onCancel;
        try
        {
            return result.Value switch
            {
                InspectOptions o => InspectCommand.Run(o, console),
                MergeOptions o => MergeCommand.Run(o, console, cancel.Token),
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
}
