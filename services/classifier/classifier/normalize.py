"""Text normalization shared by the rule layer and any model layer.

`normalize` is the canonical, fast form. `normalize_aligned` produces the same
string plus, for every output character, the span of the original text it came
from, so that evidence can be quoted exactly as the author wrote it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

__all__ = ["SARCASTIC_THANKS", "normalize", "normalize_aligned"]

# Canonical token for "thanks" said to mean its opposite (栓Q, 真的会谢 ...).
# Brackets that NFKC leaves alone and that never occur in ordinary posts, so the
# token cannot be confused with a real 谢谢 by the rules or by a model.
SARCASTIC_THANKS = "〔讽谢〕"

# Traditional -> Simplified, one code point to one code point so offsets survive.
# Generated once from a conversion dictionary and frozen here: every Traditional
# character whose Simplified form is among the 3,755 most common (GB2312 level 1)
# and which is not itself a valid Simplified character (so 乾, 著, 髮/發 style
# ambiguities that would corrupt Simplified text are left out).
_TRAD = (
    "皚藹礙愛闇骯翶襖奧垻壩覇罷栢擺襬敗頒闆辦絆幇幚幫牓髈綁鎊謗襃剝飽寳寶報鮑桮盃輩揹"
    "貝鋇狽俻備憊逩綳繃逬筆畢斃獘幣痺閉𡚁闢邊編貶變辯辮徧標臕錶鱉鼈別彆㿜癟瀕濱賓擯氷"
    "餅並併竝撥缽鉢愽鉑𩓐駁蔔補佈纔財倸埰寀採綵㕘參葠蓡蔘蠶殘慙慚慘燦蒼艙倉滄撡厠廁筞"
    "側冊測層揷査詫攙摻蟬饞讒纏剷鏟產産闡顫場塲嘗嚐甞長償腸膓厰廠暢鈔車撦徹塵陳趂襯撐"
    "稱乗懲誠騁喫癡遲馳恥齒翄熾沖衝蟲寵詶酧醻疇躊籌綢矁醜齣櫥㕑廚耡鋤雛礎儲觸處傳舩瘡"
    "牎牕窓窻牀闖剏剙創搥錘鎚旾醕脣純惷綽辤辭䛐詞賜聰蔥囪怱悤從叢湊躥簒竄脃錯達𤺥獃帶"
    "貸躭擔單鄲撣膽憚誕彈噹當𪠽擋攩黨盪蕩檔搗擣𢭏㠀島禱導盜燈櫈鄧隄敵滌牴觝蔕遞締顛點"
    "墊電澱彫琱鵰𫛲弔釣調蜨諜㬪曡疊釘頂錠訂丟東鼕働動棟凍兠鬥鬦鬪荳犢獨讀覩賭鍍妬鍛斷"
    "緞兌隊對噸㪟頓鈍遯奪垜朶跥墮䳘鵝鵞頟額訛譌噁惡戹阨搤餓㤙兒尒爾餌貳發髮罰罸栰閥㳒"
    "灋琺㠶繙飜礬釩緐凢煩範販飯氾汎倣訪紡飛誹廢癈費紛墳奮憤糞豐楓䗬蠭峯鋒風瘋馮縫諷鳳"
    "彿膚輻撫輔賦復複負訃坿婦媍縛嘠該鈣蓋乹亁幹榦桿趕稈贛岡剛鋼疘綱崗槓皐臯餻鎬稾謌擱"
    "鴿肐閣鉻個箇給龔躳宮鞏貢鈎鉤溝搆構購夠皷蠱穀顧僱颳剮掛𦊱枴柺恠關觀舘館鑵慣貫廣規"
    "歸龜閨軌詭櫃貴劊輥滾鍋國過駭韓圅扞猂釬銲漢號覈咊閤閡鶴賀橫恆轟閧鬨鴻紅嘑壺衚鬍䊀"
    "餬𫗫護滬戶芲蘤嘩譁華畫畵劃䛡話懷壞歡環還緩換喚瘓煥渙黃㨪怳謊揮輝幑痐蚘蛕蜖廻迴逥"
    "毀燬譭賄穢會燴匯彙滙諱誨繪葷昬䰟渾獲穫貨旤禍擊機積飢饑跡蹟譏雞鷄績緝極輯卽級擠幾"
    "薊劑濟計記旣際繼紀夾傢莢頰賈鉀價駕殲監堅椾牋箋間艱姦椷緘繭蠒檢鹻鹼礆揀撿簡儉減薦"
    "檻鍳鑑鑒踐賤見鍵艦劍劒餞漸濺澗殭薑將漿蔣槳奬獎講醬膠澆驕嬌攪鉸矯僥儌腳餃繳絞勦𠞰"
    "敎轎較呌稭階刦刧刼節傑㨗潔結誡屆緊錦僅謹進晉燼儘盡勁荊莖鯨驚稉經頸靜鏡徑痙競凈淨"
    "揫糾韮廄廐捄舊駒侷擧舉㨿據鉅鋸懼劇鵑勌睠捲絹覺決訣絕絶鈞軍儁駿開𫔭凱栞摃匟攷顆殻"
    "殼剋尅課肎墾懇阬摳釦㓂𡨥庫褲誇塊儈寬欵礦鑛曠況虧巋窺闚餽饋媿潰崑綑睏擴濶闊蠟臈臘"
    "辢萊來賴頼藍惏欄攔籃闌蘭瀾讕攬覽嬾懶纜爛濫瑯撈勞澇樂鐳纍壘類淚稜釐籬貍離灕裏裡鯉"
    "禮茘慄麗厲勵礫厤曆歴歷瀝隷隸𨽻倆聯蓮連䥥鎌鐮㢘亷憐漣簾斂歛臉鏈戀煉鍊𫔀練糧涼樑兩"
    "輛諒療遼瞭鐐獵臨鄰隣鱗凜賃恡齡鈴淩靈嶺領餾㽞畱劉癅栁桺龍聾嚨籠壟攏隴樓婁摟簍蘆盧"
    "顱廬𪪏爐擄滷鹵虜魯磟賂祿彔錄録陸剹驢呂鋁侶屢縷慮濾綠緑巒攣孿灤亂畧掄輪倫侖崙𪨧淪"
    "綸論蘿羅邏鑼籮騾驘臝躶駱絡媽瑪碼螞馬罵駡嗎買𧹒麥賣邁䘑脈衇瞞饅蠻滿謾貓錨鉚丣夘冐"
    "㡌貿麼黴沒鎂門悶們懞濛矇錳夢瞇謎彌瀰祕覓覔冪綿緜緬麪麫麵麺廟玅衊滅憫閩鳴銘謬謀畂"
    "畆畝畮𤱈幙吶鈉納嬭難撓腦惱閙鬧餒內嫰擬妳膩秊攆唸孃釀鳥揑聶孼嚙囓齧𫜩鑷鎳湼檸獰寧"
    "擰濘鈕紐膿濃農辳挵㬉煗瘧稬穤諾歐鷗毆嘔漚盤龐拋鑤砲肧賠噴鵬掽踫騙飃飄頻貧蘋凴憑評"
    "屛潑頗廹撲舖鋪僕樸譜朞棲慼慽悽淒棊臍齊旂騎豈唘啓啟氣棄訖牽釺鉛韆遷簽籤謙錢鉗潛淺"
    "譴塹槍鎗嗆羗𦍑墻牆薔強搶鍫鍬橋喬僑翹陗竅竊欽親寑寢輕氫傾頃請慶瓊窮秌鞦毬趨區麯麹"
    "軀敺駈驅齲顴權勸㕁卻鵲搉𣙜確帬裠羣冄讓饒擾繞遶熱靭靱韌認姙紉榮螎毧絨羢宂軟輭銳鋭"
    "閏潤灑薩顋鰓賽叄傘繖㪚桒喪騷掃澀澁濇殺剎紗篩曬刪閃陜陝贍饍繕傷賞尙燒紹賒捨攝䠶慴"
    "懾設㴱紳瀋審嬸腎滲聲昇陞繩勝聖師獅溼濕詩屍蝨旹時蝕實識駛勢適釋飾眎眡視試壽獸樞輸"
    "疎書贖屬朮術樹竪豎庻數潄帥雙誰稅順說説碩爍俬絲飤飼鬆聳慫頌訟誦蒐擻囌甦蘇蘓泝遡㝛"
    "訴肅痠祘雖隨綏嵗歲𡻕孫損筍簑縮瑣𤨏鎖鎻牠墖獺撻枱檯臺颱態攤貪癱灘墰壇壜罈罎譚談嘆"
    "歎湯餹燙搯濤絛縧討籐騰謄銻題蹏嗁體鬀屜條貼鉄鐵廳聽烴衕銅筩統頭禿圖塗兎團糰穨頹頽"
    "骽蛻臋託讬脫鴕䭾馱駝橢搨鼃窪襪韈韤彎灣翫頑㼝盌輓萬亾網徃朢韋違圍為爲濰維葦偉偽僞"
    "緯餵𫗭謂衛衞溫螡蟁聞紋脗穩問甕罋撾蝸渦窩臥嗚鎢烏汙汚誣無蕪吳塢隖霧務誤熈𤋮錫犧厀"
    "襲蓆習銑係繫戲細蝦轄峽俠狹陿廈嚇杴鍁僊尟尠鮮縴纖鹹賢啣銜閑閒𫔮絃顯險現獻縣餡羨憲"
    "綫線缐廂鑲鄉詳響項嚮曏蕭囂銷曉嘯傚効蠍鞵協挾㩗㩦擕攜衺脅脇諧寫蠏洩瀉謝鋅釁興倖兇"
    "胷洶脩銹鏽綉繡虛噓須鬚許敍敘䘏卹賉壻緒續軒懸鏇選癬絢學勛勳燻詢尋馴廵訓訊遜壓鴉鵶"
    "鴨啞亞訝嚥閹煙鹽嚴巖顏顔閻艷豓豔鷰厭硯鴈彥燄醼諺騐驗鴦楊揚瘍陽癢養樣瑤搖堯遙窯窰"
    "謠謡葯藥爺頁業葉亱醫銥頤遺迻儀彞蟻㕥㠯藝億憶義詣議誼譯異繹廕蔭囙陰隂婣銀婬滛㱃飲"
    "隱櫻嬰鷹應纓瑩螢營熒蠅贏穎喲擁傭癰踴詠湧惥優憂郵鈾猶遊誘輿餘踰魚漁娛與嶼語欝鬰鬱"
    "籲禦瘉癒慾獄譽庽預馭鴛淵寃轅園員圓猨蝯緣遠願𫖸約躍鈅鑰嶽粵悅閱閲雲鄖勻隕運藴蘊醖"
    "醞暈韻帀襍雜災烖載𠕂𠕅攢暫讚賛贊贓贜臟髒塟𦵏蹧鑿棗譟皁竈責擇則澤賊贈紥紮剳劄軋鍘"
    "牐閘柵搾詐亝齋債氈氊霑琖盞醆斬輾嶃嶄棧佔戰𢧐綻張漲帳賬𧹔脹趙蟄轍鍺這淛眞碪貞針鍼"
    "偵遉診鎭鎮陣掙睜猙爭幀癥鄭証證織職執妷姪秖隻帋紙誌摯擲緻幟製質滯鈡鍾鐘終種腫眾衆"
    "週謅軸箒呪皺晝驟硃豬諸誅燭煑矚囑貯鑄築註駐專甎磚轉譔賺樁莊裝妝粧壯狀錐贅墜綴諄準"
    "槕濁茲諮資漬騣鬉椶蹤綜總縱鄒䘚詛組鉆鑚鑽辠夥後摺於菸馀麽徵"
)
_SIMP = (
    "皑蔼碍爱暗肮翱袄奥坝坝霸罢柏摆摆败颁板办绊帮帮帮榜膀绑镑谤褒剥饱宝宝报鲍杯杯辈背"
    "贝钡狈备备惫奔绷绷迸笔毕毙毙币痹闭弊辟边编贬变辩辫遍标膘表鳖鳖别别瘪瘪濒滨宾摈冰"
    "饼并并并拨钵钵博铂脖驳卜补布才财睬采采采彩参参参参参蚕残惭惭惨灿苍舱仓沧操厕厕策"
    "侧册测层插查诧搀掺蝉馋谗缠铲铲产产阐颤场场尝尝尝长偿肠肠厂厂畅钞车扯彻尘陈趁衬撑"
    "称乘惩诚骋吃痴迟驰耻齿翅炽冲冲虫宠酬酬酬畴踌筹绸瞅丑出橱厨厨锄锄雏础储触处传船疮"
    "窗窗窗窗床闯创创创捶锤锤春醇唇纯蠢绰辞辞词词赐聪葱囱匆匆从丛凑蹿篡窜脆错达瘩呆带"
    "贷耽担单郸掸胆惮诞弹当当当挡挡党荡荡档捣捣捣岛岛祷导盗灯凳邓堤敌涤抵抵蒂递缔颠点"
    "垫电淀雕雕雕雕吊钓调蝶谍叠叠叠钉顶锭订丢东冬动动栋冻兜斗斗斗豆犊独读睹赌镀妒锻断"
    "缎兑队对吨敦顿钝遁夺垛朵跺堕鹅鹅鹅额额讹讹恶恶厄厄扼饿恩儿尔尔饵贰发发罚罚筏阀法"
    "法珐帆翻翻矾钒繁凡烦范贩饭泛泛仿访纺飞诽废废费纷坟奋愤粪丰枫蜂蜂峰锋风疯冯缝讽凤"
    "佛肤辐抚辅赋复复负讣附妇妇缚嘎该钙盖干干干干杆赶秆赣冈刚钢肛纲岗杠皋皋糕镐稿歌搁"
    "鸽胳阁铬个个给龚躬宫巩贡钩钩沟构构购够鼓蛊谷顾雇刮剐挂挂拐拐怪关观馆馆罐惯贯广规"
    "归龟闺轨诡柜贵刽辊滚锅国过骇韩函捍悍焊焊汉号核和合阂鹤贺横恒轰哄哄鸿红呼壶胡胡糊"
    "糊糊护沪户花花哗哗华画画划话话怀坏欢环还缓换唤痪焕涣黄晃恍谎挥辉徽蛔蛔蛔蛔回回回"
    "毁毁毁贿秽会烩汇汇汇讳诲绘荤昏魂浑获获货祸祸击机积饥饥迹迹讥鸡鸡绩缉极辑即级挤几"
    "蓟剂济计记既际继纪夹家荚颊贾钾价驾歼监坚笺笺笺间艰奸缄缄茧茧检碱碱硷拣捡简俭减荐"
    "槛鉴鉴鉴践贱见键舰剑剑饯渐溅涧僵姜将浆蒋桨奖奖讲酱胶浇骄娇搅铰矫侥侥脚饺缴绞剿剿"
    "教轿较叫秸阶劫劫劫节杰捷洁结诫届紧锦仅谨进晋烬尽尽劲荆茎鲸惊粳经颈静镜径痉竞净净"
    "揪纠韭厩厩救旧驹局举举据据巨锯惧剧鹃倦眷卷绢觉决诀绝绝钧军俊骏开开凯刊扛炕考颗壳"
    "壳克克课肯垦恳坑抠扣寇寇库裤夸块侩宽款矿矿旷况亏岿窥窥馈馈愧溃昆捆困扩阔阔蜡腊腊"
    "辣莱来赖赖蓝婪栏拦篮阑兰澜谰揽览懒懒缆烂滥琅捞劳涝乐镭累垒类泪棱厘篱狸离漓里里鲤"
    "礼荔栗丽厉励砾历历历历沥隶隶隶俩联莲连镰镰镰廉廉怜涟帘敛敛脸链恋炼炼炼练粮凉梁两"
    "辆谅疗辽了镣猎临邻邻鳞凛赁吝龄铃凌灵岭领馏留留刘瘤柳柳龙聋咙笼垄拢陇楼娄搂篓芦卢"
    "颅庐庐炉掳卤卤虏鲁碌赂禄录录录陆戮驴吕铝侣屡缕虑滤绿绿峦挛孪滦乱略抡轮伦仑仑仑沦"
    "纶论萝罗逻锣箩骡骡裸裸骆络妈玛码蚂马骂骂吗买买麦卖迈脉脉脉瞒馒蛮满谩猫锚铆卯卯冒"
    "帽贸么霉没镁门闷们蒙蒙蒙锰梦眯谜弥弥秘觅觅幂绵绵缅面面面面庙妙蔑灭悯闽鸣铭谬谋亩"
    "亩亩亩亩幕呐钠纳奶难挠脑恼闹闹馁内嫩拟你腻年撵念娘酿鸟捏聂孽啮啮啮啮镊镍涅柠狞宁"
    "拧泞钮纽脓浓农农弄暖暖疟糯糯诺欧鸥殴呕沤盘庞抛刨炮胚赔喷鹏碰碰骗飘飘频贫苹凭凭评"
    "屏泼颇迫扑铺铺仆朴谱期栖戚戚凄凄棋脐齐旗骑岂启启启气弃讫牵钎铅千迁签签谦钱钳潜浅"
    "谴堑枪枪呛羌羌墙墙蔷强抢锹锹桥乔侨翘峭窍窃钦亲寝寝轻氢倾顷请庆琼穷秋秋球趋区曲曲"
    "躯驱驱驱龋颧权劝却却鹊榷榷确裙裙群冉让饶扰绕绕热韧韧韧认妊纫荣融绒绒绒冗软软锐锐"
    "闰润洒萨腮鳃赛叁伞伞散桑丧骚扫涩涩涩杀刹纱筛晒删闪陕陕赡膳缮伤赏尚烧绍赊舍摄射慑"
    "慑设深绅沈审婶肾渗声升升绳胜圣师狮湿湿诗尸虱时时蚀实识驶势适释饰视视视试寿兽枢输"
    "疏书赎属术术树竖竖庶数漱帅双谁税顺说说硕烁私丝饲饲松耸怂颂讼诵搜擞苏苏苏苏溯溯宿"
    "诉肃酸算虽随绥岁岁岁孙损笋蓑缩琐琐锁锁它塔獭挞台台台台态摊贪瘫滩坛坛坛坛坛谭谈叹"
    "叹汤糖烫掏涛绦绦讨藤腾誊锑题蹄啼体剃屉条贴铁铁厅听烃同铜筒统头秃图涂兔团团颓颓颓"
    "腿蜕臀托托脱鸵驮驮驼椭拓蛙洼袜袜袜弯湾玩顽碗碗挽万亡网往望韦违围为为潍维苇伟伪伪"
    "纬喂喂谓卫卫温蚊蚊闻纹吻稳问瓮瓮挝蜗涡窝卧呜钨乌污污诬无芜吴坞坞雾务误熙熙锡牺膝"
    "袭席习铣系系戏细虾辖峡侠狭狭厦吓锨锨仙鲜鲜鲜纤纤咸贤衔衔闲闲闲弦显险现献县馅羡宪"
    "线线线厢镶乡详响项向向萧嚣销晓啸效效蝎鞋协挟携携携携邪胁胁谐写蟹泄泻谢锌衅兴幸凶"
    "胸汹修锈锈绣绣虚嘘须须许叙叙恤恤恤婿绪续轩悬旋选癣绚学勋勋熏询寻驯巡训讯逊压鸦鸦"
    "鸭哑亚讶咽阉烟盐严岩颜颜阎艳艳艳燕厌砚雁彦焰宴谚验验鸯杨扬疡阳痒养样瑶摇尧遥窑窑"
    "谣谣药药爷页业叶夜医铱颐遗移仪彝蚁以以艺亿忆义诣议谊译异绎荫荫因阴阴姻银淫淫饮饮"
    "隐樱婴鹰应缨莹萤营荧蝇赢颖哟拥佣痈踊咏涌恿优忧邮铀犹游诱舆余逾鱼渔娱与屿语郁郁郁"
    "吁御愈愈欲狱誉寓预驭鸳渊冤辕园员圆猿猿缘远愿愿约跃钥钥岳粤悦阅阅云郧匀陨运蕴蕴酝"
    "酝晕韵匝杂杂灾灾载再再攒暂赞赞赞赃赃脏脏葬葬糟凿枣噪皂灶责择则泽贼赠扎扎札札轧铡"
    "闸闸栅榨诈斋斋债毡毡沾盏盏盏斩辗崭崭栈占战战绽张涨帐账账胀赵蛰辙锗这浙真砧贞针针"
    "侦侦诊镇镇阵挣睁狰争帧症郑证证织职执侄侄只只纸纸志挚掷致帜制质滞钟钟钟终种肿众众"
    "周诌轴帚咒皱昼骤朱猪诸诛烛煮瞩嘱贮铸筑注驻专砖砖转撰赚桩庄装妆妆壮状锥赘坠缀谆准"
    "桌浊兹咨资渍鬃鬃棕踪综总纵邹卒诅组钻钻钻罪伙后折于烟余么征"
)


def _build_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {ord(t): s for t, s in zip(_TRAD, _SIMP, strict=True)}
    # Invisible characters are a common way to dodge keyword filters (傻\u200b逼),
    # and variation selectors make the same emoji compare unequal: drop them all.
    for cp in (
        *range(0x200B, 0x2010),  # zero-width space/joiners, LRM/RLM
        *range(0x202A, 0x202F),  # bidi embeddings
        *range(0x2060, 0x2070),  # word joiner, invisible operators, bidi isolates
        *range(0xFE00, 0xFE10),  # variation selectors
        0x00AD,  # soft hyphen
        0x034F,  # combining grapheme joiner
        0x061C,  # arabic letter mark
        0x115F,
        0x1160,
        0x3164,
        0xFFA0,  # hangul fillers: used as "blank" nicknames / padding
        0x180E,  # mongolian vowel separator
        0xFEFF,  # BOM / zero-width no-break space
    ):
        table[cp] = None
    # Control characters (newlines included) become spaces: a line break in a
    # forum post separates thoughts, it must not glue two words together.
    for cp in (*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029):
        table[cp] = " "
    return table


_TABLE = _build_table()

_WS_RE = re.compile(r"\s+")
# Long runs of the same character carry no more meaning than three of them
# (哈哈哈哈哈哈, !!!!!!, 。。。。), and keeping them apart bloats model inputs.
# Digits are exempt: 10000公里 must stay ten thousand.
_RUN_RE = re.compile(r"(\D)\1{3,}")

# Slang and homophone spellings folded to one canonical form. Chinese spellings
# go through one alternation (every branch starts with a literal, so the regex
# engine can skip ahead cheaply); latin tokens are looked up whole, so that e.g.
# "usb" can never yield "sb".
_CJK_FOLDS: tuple[tuple[str, str], ...] = (
    # sarcastic "thanks": annoyance, never gratitude
    (r"[栓拴] ?[q扣]", SARCASTIC_THANKS),
    (r"(?:真的|真滴|真de|是真的|真)会[谢蟹]+(?:了|啊|哦|呢)?", SARCASTIC_THANKS),
    # sincere thanks spellings
    (r"蟹蟹|谢谢谢谢|谢谢谢", "谢谢"),
    (r"煞笔|沙比|傻b|傻x|傻叉|傻屌", "傻逼"),
    (r"蚌埠住了", "绷不住了"),
    (r"无语子", "无语"),
    (r"辣鸡|拉圾", "垃圾"),
    (r"酱紫", "这样子"),
    (r"肿么", "怎么"),
    (r"神马", "什么"),
    (r"童鞋", "同学"),
    (r"木有", "没有"),
)
_ASCII_FOLDS: dict[str, str] = {
    "shuanq": SARCASTIC_THANKS,
    "3q": "谢谢",
    "3ks": "谢谢",
    "thx": "谢谢",
    "tks": "谢谢",
    "thanks": "谢谢",
    "thank you": "谢谢",
    "thankyou": "谢谢",
    "thank u": "谢谢",
    "xiexie": "谢谢",
    "xswl": "笑死我了",
    "yyds": "永远的神",
    "nsdd": "你说得对",
    "u1s1": "有一说一",
    "yysy": "有一说一",
    "dbq": "对不起",
    "bhys": "不好意思",
    "yygq": "阴阳怪气",
    "zqsg": "真情实感",
    "xdm": "兄弟们",
    "bdjw": "不懂就问",
    "mdzz": "妈的智障",
    "nmsl": "你妈死了",
    "cnm": "操你妈",
    "cnmb": "操你妈",
    "tmd": "他妈的",
    "sb": "傻逼",
    "shabi": "傻逼",
    "nb": "牛逼",
    "niubi": "牛逼",
    "lz": "楼主",
    "ls": "楼上",
}
_CJK_FOLD_RE = re.compile("|".join(f"(?P<f{i}>{p})" for i, (p, _) in enumerate(_CJK_FOLDS)))
_CJK_FOLD_OUT = {f"f{i}": out for i, (_, out) in enumerate(_CJK_FOLDS)}
_ASCII_TOKEN_RE = re.compile(r"shuan ?q|thank ?(?:you|u)|[a-z0-9]+")
_LAUGH_RE = re.compile(r"h{3,}|23{3,}")


def _fold_cjk(match: re.Match[str]) -> str:
    return _CJK_FOLD_OUT[match.lastgroup or ""]


def _fold_ascii(match: re.Match[str]) -> str:
    token = match.group()
    folded = _ASCII_FOLDS.get(token.replace(" ", "") if token.startswith("shuan") else token)
    if folded is not None:
        return folded
    if _LAUGH_RE.fullmatch(token):
        return "哈哈哈"
    return token


def normalize(text: str) -> str:
    """Canonical form of a post: what every rule and model layer reads."""
    s = unicodedata.normalize("NFKC", text).translate(_TABLE).lower()
    s = _WS_RE.sub(" ", s).strip()
    s = _RUN_RE.sub(r"\1\1\1", s)
    s = _CJK_FOLD_RE.sub(_fold_cjk, s)
    return _ASCII_TOKEN_RE.sub(_fold_ascii, s)


@lru_cache(maxsize=16384)
def _norm_char(ch: str) -> str:
    return unicodedata.normalize("NFKC", ch).translate(_TABLE).lower()


def normalize_aligned(text: str) -> tuple[str, list[int], list[int]]:
    """`normalize(text)` plus, per output character, its original [start, end).

    Works character by character, so it differs from `normalize` only where
    NFKC acts across characters: composing or reordering combining marks (a
    base letter plus accents, Zalgo text). Such marks do not occur in this
    community's Chinese and never change a rule's decision.
    """
    pieces = list(map(_norm_char, text))
    n = len(pieces)
    if list(map(len, pieces)).count(1) == n:
        # Usual case: every character maps to exactly one character.
        s = "".join(pieces)
        starts = list(range(n))
        ends = list(range(1, n + 1))
    else:
        chars: list[str] = []
        starts = []
        ends = []
        for i, piece in enumerate(pieces):
            for out in piece:
                chars.append(out)
                starts.append(i)
                ends.append(i + 1)
        s = "".join(chars)
    s, starts, ends = _sub_aligned(_WS_ODD_RE, " ", s, starts, ends)
    if s[:1] == " ":
        s, starts, ends = s[1:], starts[1:], ends[1:]
    if s[-1:] == " ":
        s, starts, ends = s[:-1], starts[:-1], ends[:-1]
    s, starts, ends = _sub_aligned(_RUN_RE, lambda m: m.group(1) * 3, s, starts, ends)
    s, starts, ends = _sub_aligned(_CJK_FOLD_RE, _fold_cjk, s, starts, ends)
    s, starts, ends = _sub_aligned(_ASCII_TOKEN_RE, _fold_ascii, s, starts, ends)
    return s, starts, ends


# Whitespace that `normalize` would rewrite: runs, or any single non-space blank.
_WS_ODD_RE = re.compile(r"\s{2,}|[^\S ]")


def _sub_aligned(
    pattern: re.Pattern[str],
    repl: str | Callable[[re.Match[str]], str],
    s: str,
    starts: list[int],
    ends: list[int],
) -> tuple[str, list[int], list[int]]:
    # Most posts contain nothing to rewrite; skip the rebuild entirely then.
    first = pattern.search(s)
    if first is None:
        return s, starts, ends
    out: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    pos = 0
    for m in pattern.finditer(s, first.start()):
        a, b = m.span()
        rep = repl if isinstance(repl, str) else repl(m)
        if rep == m.group():
            continue
        out.append(s[pos:a])
        new_starts.extend(starts[pos:a])
        new_ends.extend(ends[pos:a])
        out.append(rep)
        # Every character of a replacement points at the whole original span.
        new_starts.extend([starts[a]] * len(rep))
        new_ends.extend([ends[b - 1]] * len(rep))
        pos = b
    out.append(s[pos:])
    new_starts.extend(starts[pos:])
    new_ends.extend(ends[pos:])
    return "".join(out), new_starts, new_ends
