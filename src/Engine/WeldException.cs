namespace Weld.Engine;

/// <summary>
/// A fault in the user's input or environment that Weld reports as a clear message and a non-zero
/// exit code (never a stack trace): a corrupt file, a bad recipe, a missing tensor.
/// </summary>
public class WeldException : Exception
{
    /// <summary>Creates the exception with a message that names the file / tensor at fault.</summary>
    public WeldException(string message) : base(message) { }

    /// <summary>Creates the exception wrapping the low-level cause.</summary>
    public WeldException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A file that is not a valid safetensors / model file.</summary>
public sealed class InvalidModelFileException : WeldException
{
    /// <summary>The file at fault.</summary>
    public string FilePath { get; }

    /// <summary>Creates the exception; the message is prefixed with the file path.</summary>
    public InvalidModelFileException(string filePath, string problem)
        : base($"{filePath}: {problem}") => FilePath = filePath;
}

/// <summary>A recipe (YAML) that cannot be run as written.</summary>
public sealed class RecipeException : WeldException
{
    /// <summary>Creates the exception with a message naming the recipe line or model.</summary>
    public RecipeException(string message) : base(message) { }
}
