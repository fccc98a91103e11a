"""The hard cases of issue 3, asserted on the default (hybrid) model with sentences written for these tests."""

import pytest

from classifier import backends
from classifier.backends import Backend, Item
from shared.events import Classification


@pytest.fixture(scope="module")
def model() -> Backend:
    return backends.load("hybrid")


def classify(model: Backend, content: str, parent: str | None = None, title: str | None = None) -> Classification:
    return model.classify([Item(content, parent, title)])[0]


def test_sarcastic_thanks_is_not_gratitude(model: Backend) -> None:
    insult = "你连这个都不懂还好意思开这车?回家多读两年书吧"
    for text in ("谢谢你全家啊,真是好为人师", "栓Q,您可真是个大聪明", "真的会谢,问个问题都能被喷"):
        result = classify(model, text, insult)
        assert "gratitude" not in result.labels, text


def test_thanks_after_an_insult_is_not_gratitude_but_thanks_after_help_is(model: Backend) -> None:
    assert "gratitude" not in classify(model, "谢谢", "你是不是脑子进水了,这都问").labels
    helped = classify(model, "谢谢老哥,按你说的把胎压调到2.5就不报警了",
                      "胎压报警的话先看看是不是低于2.3,调到2.5左右就行")
    assert "gratitude" in helped.labels


def test_welcome_inside_an_advertisement_is_not_welcome(model: Backend) -> None:
    ad = classify(model, "欢迎各位车主加微信xx8866,原厂配件五折包邮,贴膜改装一条龙,私聊有惊喜")
    assert "welcome" not in ad.labels
    real = classify(model, "欢迎新朋友入群!提车了记得来晒晒照片,有啥不懂的大家都会帮你", "大家好,今天刚提车,新人报到")
    assert "welcome" in real.labels


def test_factual_report_without_complaint(model: Backend) -> None:
    result = classify(model, "补充一下数据:气温零下5度,充到80%后显示续航352公里,车是去年11月交付的,软件版本3.2.1",
                      title="冬季续航记录")
    assert "defect_report" in result.labels or "defect_hypothesis" in result.labels
    assert "defect_complaint" not in result.labels
    assert "venting" not in result.labels


def test_a_joke_without_a_quarrel_is_not_mediation(model: Backend) -> None:
    result = classify(model, "哈哈哈我家猫比导航还认路,每次到小区门口就开始叫", "分享一下周末带猫去露营的照片")
    assert "mediation" not in result.labels
    calming = classify(model, "两位都消消气,一个图省心一个图性能,各有各的道理,咱们说回续航本身吧",
                       "你懂个屁,开油车的别来电车群指手画脚")
    assert "mediation" in calming.labels


def test_negation_is_not_defect_framing_nor_complaint(model: Backend) -> None:
    result = classify(model, "这个真不是质量问题,是冬天电池的正常特性,预热一下就好了",
                      "冬天续航掉得厉害,是不是电池有问题")
    assert "defect_framing" not in result.labels
    smooth = classify(model, "我的车机用了一年一点都不卡,流畅得很")
    assert "defect_complaint" not in smooth.labels


def test_slang_and_homophones(model: Backend) -> None:
    assert "hostility" in classify(model, "nt吧你,sb才会信这种说法", "我觉得这车底盘调校挺好的").labels
    grateful = classify(model, "xswl,原来是这么开的,感恩大佬🙏", "后备箱在钥匙上长按那个按钮两秒就开")
    assert "gratitude" in grateful.labels


def test_traditional_characters_and_typos(model: Backend) -> None:
    question = classify(model, "剛提車的新手,請問自動駐車要在哪裡打開?")
    assert "newcomer_question" in question.labels
    typo = classify(model, "车机又卡死了再,气死我了,开个导航都再转圈")
    assert "defect_complaint" in typo.labels or "venting" in typo.labels


def test_emoji_carry_emotion(model: Backend) -> None:
    result = classify(model, "售后第三次让我等配件了😡😡😡 再也不会买这个牌子")
    assert "venting" in result.labels


def test_an_answer_is_only_an_answer_to_a_question(model: Backend) -> None:
    info = "保养周期是一年或者一万公里,app里可以直接预约,很方便"
    assert "newcomer_answer" in classify(model, info, "新手请教一下,多久保养一次啊?").labels
    assert "newcomer_answer" not in classify(model, "请问保养周期是多久?app里能预约吗").labels
