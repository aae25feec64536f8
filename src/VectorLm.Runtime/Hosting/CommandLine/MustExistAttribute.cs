using System.ComponentModel.DataAnnotations;

// In the namespace of [Option], so trainers need no extra using.
namespace VectorLm;

/// <summary>
/// Requires an <c>[Option]</c> that names a file or folder to name one that exists: a <see cref="FileInfo"/> an existing
/// file, a <see cref="DirectoryInfo"/> an existing folder, a <see cref="string"/> either. An option left unset (null or
/// empty) passes; add <see cref="RequiredAttribute"/> to demand one.
/// </summary>
/// <example><c>[Option, MustExist] public DirectoryInfo? Model { get; init; }</c> refuses <c>--model /no/such/folder</c>.</example>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field | AttributeTargets.Parameter, AllowMultiple = false)]
public sealed class MustExistAttribute : ValidationAttribute
{
    /// <summary>Creates the constraint.</summary>
    public MustExistAttribute() : base("{0} must name an existing file or folder.")
    {
    }

    /// <inheritdoc />
    public override bool IsValid(object? value) => value switch
    {
        null or "" => true,
        FileInfo file => File.Exists(file.FullName),
        DirectoryInfo folder => Directory.Exists(folder.FullName),
        string path => File.Exists(path) || Directory.Exists(path),
        _ => throw new InvalidOperationException(
            $"[MustExist] applies to string, FileInfo and DirectoryInfo options, not to {value.GetType().Name}."),
    };

    internal static string KindOf(object? value) => value switch
    {
        FileInfo => "file",
        DirectoryInfo => "folder",
        _ => "file or folder",
    };

    internal static string PathOf(object? value) => value switch
    {
        FileSystemInfo info => info.ToString(),
        _ => value?.ToString() ?? "",
    };
}
