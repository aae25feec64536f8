using ScottPlot;
using SkiaSharp;

namespace VectorLm.Training;

/// <summary>Writes a PNG with one panel per metric over steps (ScottPlot on SkiaSharp; no system libraries needed).</summary>
public static class MetricsPlot
{
    /// <summary>
    /// Draws each of <paramref name="names"/> from <paramref name="history"/> in its own panel (two columns) and writes
    /// the PNG to <paramref name="path"/> atomically: a reader never sees half a file, a failure keeps the previous one.
    /// </summary>
    /// <exception cref="IOException">The file cannot be written; the message names it.</exception>
    public static void Save(string path, MetricsHistory history, IReadOnlyList<string> names, int width = 1200, int height = 800)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(history);
        ArgumentNullException.ThrowIfNull(names);
        if (names.Count == 0) throw new ArgumentException("name at least one metric to plot", nameof(names));
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 100);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 100);

        var plots = names.Select(name => Panel(name, history.Series(name))).ToList();
        var multiplot = new Multiplot(plots[0]); // the parameterless constructor adds an empty first panel
        foreach (var plot in plots.Skip(1)) multiplot.Subplots.Add(plot);
        int columns = plots.Count == 1 ? 1 : 2;
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Grid((plots.Count + columns - 1) / columns, columns);

        using var surface = SKSurface.Create(new SKImageInfo(width, height))
            ?? throw new InvalidOperationException($"SkiaSharp could not create a {width}x{height} surface");
        surface.Canvas.Clear(SKColors.White);
        multiplot.Render(surface.Canvas, new PixelRect(0, width, height, 0));
        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException("SkiaSharp could not encode the plot as PNG");

        string full = Path.GetFullPath(path), tmp = full + ".tmp";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            using (var file = File.Create(tmp)) png.SaveTo(file);
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw new IOException($"cannot write the plot '{path}': {e.Message}", e);
        }
    }

    static Plot Panel(string name, IReadOnlyList<(double Step, double Value)> points)
    {
        var plot = new Plot();
        plot.Title(points.Count == 0 ? $"{name} (no data yet)" : name);
        plot.XLabel("step");
        if (points.Count > 0)
        {
            var scatter = plot.Add.Scatter(points.Select(p => p.Step).ToArray(), points.Select(p => p.Value).ToArray());
            scatter.MarkerSize = points.Count > 50 ? 0 : 4;
        }
        return plot;
    }
}
