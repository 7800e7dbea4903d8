using System.Buffers.Binary;
using System.Text;
using Weld.Engine.Tokenizers;

namespace Weld.Engine.Tests.Tokenizers;

/// <summary>
/// Writes a sentencepiece ModelProto by hand for the fixtures: the pieces (field 1), plus fields a real
/// tokenizer.model carries that the reader must skip (a trainer_spec message, a normalizer_spec, a varint and a
/// fixed64 field placed between the pieces).
/// </summary>
internal static class SentencePieceWriter
{
    public static byte[] Write(IReadOnlyList<SentencePiece> pieces, bool withOtherFields = true)
    {
        var output = new List<byte>();
        for (int i = 0; i < pieces.Count; i++)
        {
            SentencePiece p = pieces[i];
            var message = new List<byte>();
            LengthDelimited(message, 1, Encoding.UTF8.GetBytes(p.Piece));
            Tag(message, 2, 5);
            var score = new byte[4];
            BinaryPrimitives.WriteSingleLittleEndian(score, p.Score);
            message.AddRange(score);
            if (p.Type != SentencePieceType.Normal) // NORMAL is the proto default: sentencepiece leaves it out
            {
                Tag(message, 3, 0);
                Varint(message, (ulong)p.Type);
            }
            LengthDelimited(output, 1, message.ToArray());
            if (withOtherFields && i == 1)
            {
                Tag(output, 99, 0); // an unknown varint field between pieces
                Varint(output, 300);
                Tag(output, 98, 1); // an unknown fixed64
                output.AddRange(new byte[8]);
            }
        }
        if (withOtherFields)
        {
            var trainer = new List<byte>();
            Tag(trainer, 3, 0); // model_type: BPE
            Varint(trainer, 2);
            LengthDelimited(trainer, 1, Encoding.UTF8.GetBytes("input.txt"));
            LengthDelimited(output, 2, trainer.ToArray());
            LengthDelimited(output, 3, Encoding.UTF8.GetBytes("\n\x0Bidentity")); // normalizer_spec { name: "identity" }
        }
        return output.ToArray();
    }

    /// <summary>
    /// A model the way Llama 2's tokenizer.model is set up: BPE, <paramref name="byteFallback"/>, unk/bos/eos ids
    /// 0/1/2, and the identity normalizer with a dummy prefix, whitespace as ▁ and extra whitespace kept.
    /// </summary>
    public static byte[] WriteLlama2Style(IReadOnlyList<SentencePiece> pieces, bool byteFallback = true)
    {
        var output = new List<byte>(Write(pieces, withOtherFields: false));
        var trainer = new List<byte>();
        LengthDelimited(trainer, 1, Encoding.UTF8.GetBytes("input.txt"));
        VarintField(trainer, 3, 2); // model_type: BPE
        VarintField(trainer, 35, byteFallback ? 1UL : 0UL); // byte_fallback
        VarintField(trainer, 40, 0); // unk_id
        VarintField(trainer, 41, 1); // bos_id
        VarintField(trainer, 42, 2); // eos_id
        LengthDelimited(output, 2, trainer.ToArray());
        var normalizer = new List<byte>();
        LengthDelimited(normalizer, 1, Encoding.UTF8.GetBytes("identity"));
        VarintField(normalizer, 3, 1); // add_dummy_prefix
        VarintField(normalizer, 4, 0); // remove_extra_whitespaces
        VarintField(normalizer, 5, 1); // escape_whitespaces
        LengthDelimited(output, 3, normalizer.ToArray());
        return output.ToArray();
    }

    private static void VarintField(List<byte> output, int field, ulong value)
    {
        Tag(output, field, 0);
        Varint(output, value);
    }

    private static void LengthDelimited(List<byte> output, int field, byte[] bytes)
    {
        Tag(output, field, 2);
        Varint(output, (ulong)bytes.Length);
        output.AddRange(bytes);
    }

    private static void Tag(List<byte> output, int field, int wire) => Varint(output, ((ulong)field << 3) | (uint)wire);

    private static void Varint(List<byte> output, ulong value)
    {
        while (value >= 0x80)
        {
            output.Add((byte)(value | 0x80));
            value >>= 7;
        }
        output.Add((byte)value);
    }
}
