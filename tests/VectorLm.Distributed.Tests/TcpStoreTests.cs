using System.Text;

namespace VectorLm.Distributed.Tests;

public class TcpStoreTests
{
    [Fact]
    public void Set_get_add_wait_and_check_follow_torch_semantics()
    {
        using var server = TcpStore.Connect("127.0.0.1", 0, isServer: true, TimeSpan.FromSeconds(5));
        using var client = TcpStore.Connect("127.0.0.1", server.ServerPort!.Value, isServer: false, TimeSpan.FromSeconds(5));

        client.Set("a", "hello");
        Assert.Equal("hello", server.GetString("a"));
        Assert.Equal(3, server.Add("n", 3));
        Assert.Equal(-1, client.Add("n", -4));
        Assert.True(client.Check(["a", "n"]));
        Assert.False(client.Check(["a", "missing"]));
        Assert.True(client.Delete("a"));
        Assert.False(client.Check(["a"]));
        Assert.False(client.Wait(["never"], TimeSpan.FromMilliseconds(200)));
        Assert.Throws<TimeoutException>(() => client.Get("never", TimeSpan.FromMilliseconds(200)));
    }

    [Fact]
    public async Task Get_waits_until_another_client_sets_the_key()
    {
        using var server = TcpStore.Connect("127.0.0.1", 0, isServer: true, TimeSpan.FromSeconds(5));
        using var client = TcpStore.Connect("127.0.0.1", server.ServerPort!.Value, isServer: false, TimeSpan.FromSeconds(5));
        var getter = Task.Run(() => client.Get("late", TimeSpan.FromSeconds(30)));
        await Task.Delay(100);
        Assert.False(getter.IsCompleted);
        server.Set("late", Encoding.UTF8.GetBytes("value"));
        Assert.Equal("value", Encoding.UTF8.GetString(await getter));
        Assert.True(client.Wait(["late"]));
    }
}
