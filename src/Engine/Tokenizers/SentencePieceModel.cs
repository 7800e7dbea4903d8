using System.Buffers.Binary;
using System.Text;

namespace Weld.Engine.Tokenizers;

/// <summary>The type of a sentencepiece piece (<c>SentencePiece.Type</c> of sentencepiece_model.proto).</summary>
public enum SentencePieceType
{
    /// <summary>A normal symbol.</summary>
    Normal = 1,
    /// <summary>The unknown symbol (<c>&lt;unk&gt;</c>).</summary>
    Unknown = 2,
    /// <summary>A control symbol (<c>&lt;s&gt;</c>, <c>&lt;/s&gt;</c>).</summary>
    Control = 3,
    /// <summary>A user-defined symbol.</summary>
    UserDefined = 4,
    /// <summary>An unused symbol.</summary>
    Unused = 5,
    /// <summary>A byte-fallback symbol (<c>&lt;0x0A&gt;</c>).</summary>
    Byte = 6,
}

/// <summary>One piece of a sentencepiece model: its text, score and type; its id is its position.</summary>
/// <param name="Piece">The piece text (with U+2581 for a leading space).</param>
/// <param name="Score">Its score (log probability for unigram, merge rank for BPE).</param>
/// <param name="Type">Its type.</param>
public readonly record struct SentencePiece(string Piece, float Score, SentencePieceType Type);

/// <summary>
/// The vocabulary of a sentencepiece <c>tokenizer.model</c> (Llama 2 / Mistral): the pieces of its <c>ModelProto</c>
/// (field 1, repeated <c>SentencePiece { string piece = 1; float score = 2; Type type = 3 [default NORMAL]; }</c>).
/// The protobuf is read by hand: only the pieces are needed, and a package (with its protobuf runtime) would bring
/// a whole tokenizer for a 60-line reader. Every other field is skipped.
/// </summary>
public static class SentencePieceModel
{
    /// <summary>Reads the pieces of a tokenizer.model.</summary>
    /// <exception cref="WeldException">Not a readable ModelProto (message names the file and byte offset).</exception>
    public static IReadOnlyList<SentencePiece> ReadPieces(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        IReadOnlyList<SentencePiece> pieces;
        try
        {
            pieces = ReadPieces(bytes);
        }
        catch (FormatException e)
        {
            throw new WeldException($"{path}: not a sentencepiece model: {e.Message}");
        }
        // A tiktoken tokenizer.model (Llama 3 original checkpoints) is text that may scan as protobuf fields.
        return pieces.Count > 0 ? pieces
            : throw new WeldException($"{path}: not a sentencepiece model: it has no pieces (a tiktoken file? Weld reads those models' tokenizer.json)");
    }

    /// <summary>Reads the pieces of a serialized ModelProto.</summary>
    /// <exception cref="FormatException">Broken protobuf.</exception>
    public static IReadOnlyList<SentencePiece> ReadPieces(ReadOnlySpan<byte> model)
    {
        var pieces = new List<SentencePiece>();
        var reader = new ProtoReader(model);
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.Tag();
            if (field == 1 && wire == ProtoReader.LengthDelimited) pieces.Add(ReadPiece(reader.Bytes()));
            else reader.Skip(wire);
        }
        return pieces;
    }

    private static SentencePiece ReadPiece(ReadOnlySpan<byte> message)
    {
        string? piece = null;
        float score = 0;
        var type = SentencePieceType.Normal;
        var reader = new ProtoReader(message);
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.Tag();
            if (field == 1 && wire == ProtoReader.LengthDelimited) piece = Encoding.UTF8.GetString(reader.Bytes());
            else if (field == 2 && wire == ProtoReader.Fixed32Wire) score = BitConverter.Int32BitsToSingle((int)reader.Fixed32Value());
            else if (field == 3 && wire == ProtoReader.VarintWire)
            {
                ulong value = reader.Varint();
                if (value is < 1 or > 6) throw new FormatException($"piece {piece ?? "?"} has unknown type {value}");
                type = (SentencePieceType)value;
            }
            else reader.Skip(wire);
        }
        return new SentencePiece(piece ?? throw new FormatException("a piece without text"), score, type);
    }

    /// <summary>A protobuf wire-format reader over a byte span (varint, fixed32/64, length-delimited).</summary>
    private ref struct ProtoReader(ReadOnlySpan<byte> data)
    {
        public const int VarintWire = 0, Fixed64Wire = 1, LengthDelimited = 2, Fixed32Wire = 5;
        private readonly ReadOnlySpan<byte> _data = data;
        private int _position;

        public readonly bool AtEnd => _position >= _data.Length;

        public (int Field, int Wire) Tag()
        {
            ulong tag = Varint();
            if (tag >> 3 is 0 or > int.MaxValue) throw new FormatException($"bad field tag at byte {_position}");
            return ((int)(tag >> 3), (int)(tag & 7));
        }

        public ulong Varint()
        {
            ulong value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_position >= _data.Length) throw new FormatException($"truncated varint at byte {_position}");
                byte b = _data[_position++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return value;
            }
            throw new FormatException($"varint longer than 10 bytes at byte {_position}");
        }

        public uint Fixed32Value() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

        public ReadOnlySpan<byte> Bytes()
        {
            ulong length = Varint();
            if (length > (ulong)(_data.Length - _position)) throw new FormatException($"a field of {length} bytes runs past the end at byte {_position}");
            return Take((int)length);
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case VarintWire: Varint(); break;
                case Fixed64Wire: Take(8); break;
                case LengthDelimited: Bytes(); break;
                case Fixed32Wire: Take(4); break;
                default: throw new FormatException($"unsupported wire type {wire} at byte {_position}");
            }
        }

        private ReadOnlySpan<byte> Take(int count)
        {
            if (count > _data.Length - _position) throw new FormatException($"truncated field at byte {_position}");
            ReadOnlySpan<byte> slice = _data.Slice(_position, count);
            _position += count;
            return slice;
        }
    }
}
