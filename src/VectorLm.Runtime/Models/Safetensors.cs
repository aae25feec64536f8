using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace VectorLm.Models;

/// <summary>Name, element type, shape and byte range of one tensor in a safetensors file.</summary>
public sealed record SafetensorsEntry(string Name, ScalarType DType, long[] Shape, long Begin, long End);

/// <summary>
/// A safetensors file opened by memory mapping: tensors are copied straight from the mapped pages into tensor memory.
/// Supports F32, F16 and BF16 (the dtypes of Hugging Face Llama checkpoints).
/// </summary>
/// <remarks>Format: an 8-byte little-endian header length, a JSON header mapping names to
/// <c>{dtype, shape, data_offsets}</c> (offsets relative to the end of the header), then the data.</remarks>
public sealed unsafe class SafetensorsFile : IDisposable
{
    readonly MemoryMappedFile? _file;
    readonly MemoryMappedViewAccessor? _view;
    readonly byte* _data;
    readonly long _dataLength;
    bool _disposed;

    /// <summary>The path this file was opened from.</summary>
    public string Path { get; }
    /// <summary>Tensors by name.</summary>
    public IReadOnlyDictionary<string, SafetensorsEntry> Entries { get; }
    /// <summary>The <c>__metadata__</c> strings.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    SafetensorsFile(string path)
    {
        Path = path;
        long length = new FileInfo(path).Length;
        if (length < 8) throw new InvalidDataException($"{path}: {length} bytes is too short for a safetensors file");
        _file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* basePtr = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePtr);
            basePtr += _view.PointerOffset;
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(basePtr, 8));
            if (headerLength > (ulong)(length - 8) || headerLength > 100_000_000)
                throw new InvalidDataException($"{path}: header length {headerLength} does not fit the file of {length} bytes");
            _data = basePtr + 8 + (long)headerLength;
            _dataLength = length - 8 - (long)headerLength;
            (Entries, Metadata) = ParseHeader(path, new ReadOnlySpan<byte>(basePtr + 8, (int)headerLength), _dataLength);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Opens and validates the header of <paramref name="path"/>.</summary>
    public static SafetensorsFile Open(string path) => new(path);

    static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) ParseHeader(string path, ReadOnlySpan<byte> header, long dataLength)
    {
        JsonObject obj;
        try
        {
            obj = JsonNode.Parse(header)?.AsObject() ?? throw new InvalidDataException($"{path}: empty header");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: header is not a JSON object: {e.Message}", e);
        }
        var entries = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, node) in obj)
        {
            if (name == "__metadata__")
            {
                if (node is JsonObject meta)
                    foreach (var (k, v) in meta) metadata[k] = v?.GetValue<string>() ?? "";
                continue;
            }
            if (node is not JsonObject t) throw new InvalidDataException($"{path}: entry \"{name}\" is not an object");
            string dtypeName = t["dtype"]?.GetValue<string>() ?? throw new InvalidDataException($"{path}: tensor \"{name}\" has no dtype");
            ScalarType dtype = dtypeName switch
            {
                "F32" => ScalarType.Float32,
                "F16" => ScalarType.Float16,
                "BF16" => ScalarType.BFloat16,
                _ => throw new InvalidDataException($"{path}: tensor \"{name}\" has dtype {dtypeName}; supported: F32, F16, BF16"),
            };
            long[] shape = t["shape"]?.AsArray().Select(d => d!.GetValue<long>()).ToArray()
                ?? throw new InvalidDataException($"{path}: tensor \"{name}\" has no shape");
            var offsets = t["data_offsets"]?.AsArray().Select(d => d!.GetValue<long>()).ToArray();
            if (offsets is not { Length: 2 }) throw new InvalidDataException($"{path}: tensor \"{name}\" has no data_offsets pair");
            long expected = shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype);
            if (offsets[0] < 0 || offsets[1] > dataLength || offsets[1] - offsets[0] != expected)
                throw new InvalidDataException($"{path}: tensor \"{name}\" has data_offsets [{offsets[0]}, {offsets[1]}] but shape {FormatShape(shape)} of {dtypeName} needs {expected} bytes within {dataLength}");
            entries[name] = new SafetensorsEntry(name, dtype, shape, offsets[0], offsets[1]);
        }
        return (entries, metadata);
    }

    internal static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 => 2,
        _ => throw new NotSupportedException($"dtype {t} is not supported by safetensors I/O here (F32, F16, BF16)"),
    };

    internal static string DTypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        _ => throw new NotSupportedException($"dtype {t} is not supported by safetensors I/O here (F32, F16, BF16)"),
    };

    internal static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    SafetensorsEntry Entry(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Entries.TryGetValue(name, out var e) ? e : throw new KeyNotFoundException($"{Path}: no tensor \"{name}\"");
    }

    /// <summary>A new CPU tensor with the stored dtype, shape and bytes of <paramref name="name"/>.</summary>
    public Tensor Read(string name)
    {
        var e = Entry(name);
        var t = empty(e.Shape, e.DType);
        CopyBytes(e, t);
        return t;
    }

    /// <summary>
    /// Copies tensor <paramref name="name"/> into <paramref name="destination"/> (any device and dtype; converted as
    /// needed, bit-exact when the dtypes agree).
    /// </summary>
    /// <exception cref="InvalidDataException">The shapes differ; the message names the tensor and both shapes.</exception>
    public void CopyInto(string name, Tensor destination)
    {
        var e = Entry(name);
        if (!e.Shape.SequenceEqual(destination.shape))
            throw new InvalidDataException($"{Path}: tensor \"{name}\" has shape {FormatShape(e.Shape)} but the model expects {FormatShape(destination.shape)}");
        using var _ = no_grad();
        if (destination.device_type == DeviceType.CPU && destination.dtype == e.DType && destination.is_contiguous())
        {
            CopyBytes(e, destination);
            return;
        }
        using var staging = empty(e.Shape, e.DType);
        CopyBytes(e, staging);
        destination.copy_(staging);
    }

    // memcpy from the mapping into a contiguous CPU tensor, in chunks under Span's 2 GiB limit.
    void CopyBytes(SafetensorsEntry e, Tensor t)
    {
        long total = e.End - e.Begin;
        if (total == 0) return;
        int elementSize = ElementSize(e.DType);
        using var flat = t.view(-1);
        long chunkElements = (1L << 30) / elementSize;
        for (long start = 0; start < flat.shape[0]; start += chunkElements)
        {
            long count = Math.Min(chunkElements, flat.shape[0] - start);
            using var part = flat.narrow(0, start, count);
            new ReadOnlySpan<byte>(_data + e.Begin + start * elementSize, checked((int)(count * elementSize))).CopyTo(part.bytes);
        }
    }

    /// <summary>Releases the mapping.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _file?.Dispose();
    }

    /// <summary>
    /// Writes <paramref name="tensors"/> as one safetensors file at <paramref name="path"/> (temporary file, then
    /// rename, so a failed write leaves any previous file intact). Each tensor is stored in its own dtype unless
    /// <paramref name="dtype"/> is given.
    /// </summary>
    public static void Save(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, ScalarType? dtype = null,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var header = new JsonObject();
        var meta = new JsonObject { ["format"] = "pt" };
        if (metadata is not null) foreach (var (k, v) in metadata) meta[k] = v;
        header["__metadata__"] = meta;
        long offset = 0;
        var types = new ScalarType[list.Count];
        for (int i = 0; i < list.Count; i++)
        {
            var (name, t) = list[i];
            types[i] = dtype ?? t.dtype;
            long bytes = t.numel() * ElementSize(types[i]);
            if (header.ContainsKey(name)) throw new ArgumentException($"tensor \"{name}\" is listed twice");
            header[name] = new JsonObject
            {
                ["dtype"] = DTypeName(types[i]),
                ["shape"] = new JsonArray(t.shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        byte[] headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (headerBytes.Length + 7) / 8 * 8; // 8-byte alignment of the data, padded with spaces as the spec allows

        string full = System.IO.Path.GetFullPath(path);
        string tmp = full + ".tmp";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> len = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
                fs.Write(len);
                fs.Write(headerBytes);
                for (int p = headerBytes.Length; p < padded; p++) fs.WriteByte((byte)' ');
                for (int i = 0; i < list.Count; i++)
                {
                    using var scope = NewDisposeScope();
                    var t = list[i].Tensor.detach();
                    if (t.dtype != types[i]) t = t.to(types[i]);
                    if (t.device_type != DeviceType.CPU) t = t.cpu();
                    t = t.contiguous().view(-1);
                    int elementSize = ElementSize(types[i]);
                    long chunk = (1L << 30) / elementSize;
                    for (long start = 0; start < t.shape[0]; start += chunk)
                        fs.Write(t.narrow(0, start, Math.Min(chunk, t.shape[0] - start)).bytes);
                }
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }
}

/// <summary>
/// The weights of a Hugging Face model folder: <c>model.safetensors</c>, or the shards listed by
/// <c>model.safetensors.index.json</c>.
/// </summary>
public sealed class SafetensorsFolder : IDisposable
{
    /// <summary>Single-file weights name.</summary>
    public const string SingleFileName = "model.safetensors";
    /// <summary>Sharded weights index name.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    readonly List<SafetensorsFile> _files = new();
    readonly Dictionary<string, SafetensorsFile> _byName = new(StringComparer.Ordinal);

    /// <summary>The folder.</summary>
    public string Folder { get; }

    SafetensorsFolder(string folder)
    {
        Folder = folder;
        try
        {
            string single = Path.Combine(folder, SingleFileName), index = Path.Combine(folder, IndexFileName);
            if (File.Exists(index))
            {
                var map = JsonNode.Parse(File.ReadAllText(index))?["weight_map"]?.AsObject()
                    ?? throw new InvalidDataException($"{index}: no \"weight_map\"");
                var opened = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
                foreach (var (name, fileNode) in map)
                {
                    string file = fileNode!.GetValue<string>();
                    // A shard name is a path inside the folder: an index must not make us read elsewhere.
                    if (file.Length == 0 || Path.IsPathRooted(file) || file.Split('/', '\\').Contains(".."))
                        throw new InvalidDataException($"{index}: tensor \"{name}\" is mapped to \"{file}\", which is not a file inside the folder (no \"..\", not absolute)");
                    if (!opened.TryGetValue(file, out var f))
                    {
                        f = SafetensorsFile.Open(Path.Combine(folder, file));
                        opened[file] = f;
                        _files.Add(f);
                    }
                    if (!f.Entries.ContainsKey(name)) throw new InvalidDataException($"{index}: tensor \"{name}\" is mapped to {file}, which lacks it");
                    _byName[name] = f;
                }
            }
            else if (File.Exists(single))
            {
                var f = SafetensorsFile.Open(single);
                _files.Add(f);
                foreach (var name in f.Entries.Keys) _byName[name] = f;
            }
            else
            {
                throw new FileNotFoundException($"{folder}: neither {SingleFileName} nor {IndexFileName} exists");
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Opens the weights of <paramref name="folder"/>.</summary>
    public static SafetensorsFolder Open(string folder) => new(folder);

    /// <summary>All tensor names.</summary>
    public IEnumerable<string> Names => _byName.Keys;

    /// <summary>The file and entry holding <paramref name="name"/>, or null.</summary>
    public SafetensorsEntry? Find(string name) => _byName.TryGetValue(name, out var f) ? f.Entries[name] : null;

    /// <summary>Copies tensor <paramref name="name"/> into <paramref name="destination"/>; see <see cref="SafetensorsFile.CopyInto"/>.</summary>
    /// <exception cref="InvalidDataException">Missing tensor or wrong shape; the message names the tensor (and both shapes).</exception>
    public void CopyInto(string name, Tensor destination)
    {
        if (!_byName.TryGetValue(name, out var f))
            throw new InvalidDataException($"{Folder}: tensor \"{name}\" (shape {SafetensorsFile.FormatShape(destination.shape)}) is missing from the checkpoint");
        f.CopyInto(name, destination);
    }

    /// <summary>Reads tensor <paramref name="name"/> as a new CPU tensor.</summary>
    public Tensor Read(string name) => _byName.TryGetValue(name, out var f) ? f.Read(name)
        : throw new InvalidDataException($"{Folder}: tensor \"{name}\" is missing from the checkpoint");

    /// <summary>Releases all mappings.</summary>
    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
    }

    /// <summary>
    /// Writes tensors in the Hugging Face layout: one <c>model.safetensors</c>, or, when the total exceeds
    /// <paramref name="maxShardBytes"/>, shards <c>model-0000i-of-0000n.safetensors</c> plus the index. Files that
    /// belonged to an earlier save in another layout are removed after the new files are in place.
    /// </summary>
    public static void Save(string folder, IReadOnlyList<(string Name, Tensor Tensor)> tensors, ScalarType? dtype = null,
        long maxShardBytes = long.MaxValue)
    {
        Directory.CreateDirectory(folder);
        var shards = new List<List<(string, Tensor)>> { new() };
        long shardBytes = 0, totalBytes = 0;
        foreach (var (name, t) in tensors)
        {
            long bytes = t.numel() * SafetensorsFile.ElementSize(dtype ?? t.dtype);
            if (shards[^1].Count > 0 && shardBytes + bytes > maxShardBytes)
            {
                shards.Add(new());
                shardBytes = 0;
            }
            shards[^1].Add((name, t));
            shardBytes += bytes;
            totalBytes += bytes;
        }
        string index = Path.Combine(folder, IndexFileName), single = Path.Combine(folder, SingleFileName);
        if (shards.Count == 1)
        {
            SafetensorsFile.Save(single, shards[0], dtype);
            if (File.Exists(index)) File.Delete(index);
            return;
        }
        var weightMap = new JsonObject();
        for (int i = 0; i < shards.Count; i++)
        {
            string file = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafetensorsFile.Save(Path.Combine(folder, file), shards[i], dtype);
            foreach (var (name, _) in shards[i]) weightMap[name] = file;
        }
        var json = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = totalBytes }, ["weight_map"] = weightMap };
        File.WriteAllText(index + ".tmp", json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.Move(index + ".tmp", index, overwrite: true);
        if (File.Exists(single)) File.Delete(single);
    }
}
